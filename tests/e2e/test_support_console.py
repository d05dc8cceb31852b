"""An agent in Chromium: sign in, find a paid request by the customer's email, redeliver."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackAttempt
from portal.payments.services import fulfil_payment, start_payment
from portal.support.auth import create_staff
from tests.factories import make_merchant, make_request, statement_body
from tests.servers import HTTPRecorder

pytestmark = pytest.mark.e2e

PASSWORD = "agent password 42"


def test_agent_finds_a_paid_request_and_redelivers_its_callback(live_server, browser, shot):
    base, app = live_server
    receiver = HTTPRecorder(lambda req: (200, {}, b"ok")).start()
    try:
        with app.app_context():
            m = make_merchant(name="Corner Shop")
            add_endpoint(m.id, receiver.url, ["payment.succeeded"])
            body = statement_body()
            body["customer"]["email"] = "lotte@example.com"
            pr = make_request(m, body)
            payment = start_payment(pr, None)
            fulfil_payment(payment.id)
            db.session.commit()
            run_due_jobs()
            create_staff("agent@portal.test", "support", [], PASSWORD)
            db.session.commit()
            pr_id = pr.id
        assert len(receiver.requests) == 1
        page = browser.new_page()
        page.goto(f"{base}/support/")
        page.get_by_label("Email").fill("agent@portal.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Search").click()
        page.get_by_label("Request or payment id").fill("lotte@example.com")
        page.get_by_role("button", name="Search").click()
        shot(page, "search")
        page.get_by_role("link", name="STMT-1").click()
        expect(page.get_by_text("Payment succeeded")).to_be_visible()
        callback = page.get_by_role("listitem").filter(has_text="payment.succeeded")
        callback.get_by_role("link", name="Redeliver").click()
        page.get_by_label("Why?").fill("ledger says it never got it")
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("Done. The action is in the audit log.")).to_be_visible()
        with app.app_context():
            run_due_jobs()
        page.reload()
        shot(page, "timeline")
        assert len(receiver.requests) == 2
        assert (
            receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
        )
        with app.app_context():
            assert db.session.query(CallbackAttempt).count() == 2
        assert page.locator("table.attempts tbody tr").count() == 2
        assert pr_id in page.url
    finally:
        receiver.stop()
