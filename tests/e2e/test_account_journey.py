"""The customer's account page in headless Chromium at 390 px: one statement line of €30
and a deposit of €50 ticked, €80 paid once; each request's callback, verified with
standardwebhooks, carries its own allocation, and the ledger adds up."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from standardwebhooks import Webhook

from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.links import account_url
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import PaymentGroup
from tests.e2e.test_accessibility import axe_source, violations
from tests.factories import make_merchant, make_request
from tests.functional.account.test_account_page import deposit, statement
from tests.servers import HTTPRecorder

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver():
    server = HTTPRecorder(lambda req: (200, {}, b'{"ok": true}')).start()
    yield server
    server.stop()


def test_one_line_and_a_deposit_paid_at_once(live_server, browser, shot, receiver):
    _base, app = live_server
    with app.app_context():
        m = make_merchant(name="Boulangerie Dupont")
        endpoint = add_endpoint(m.id, f"{receiver.url}/ledger")
        secret = endpoint.secret
        st = make_request(m, statement())
        dep = make_request(m, deposit())
        st_id, dep_id = st.id, dep.id
        url = account_url(m.id, "C-9")
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-GB")
    page.goto(url)
    expect(page.get_by_role("heading", name="Your account at Boulangerie Dupont")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    axe = axe_source()
    assert violations(page, axe) == []
    shot(page, "account")
    page.get_by_role("checkbox", name=re.compile("Bread")).check()
    page.get_by_role("checkbox", name=re.compile(r"Pay all of it: €50\.00")).check()
    page.get_by_role("button", name="Pay the ticked items").click()
    expect(page.get_by_role("heading", name="Pay €80.00")).to_be_visible()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry").fill("12/39")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Pay €80.00").click()
    expect(page.get_by_role("heading", name="Payment received — thank you!")).to_be_visible()
    assert violations(page, axe) == []
    shot(page, "paid")
    page.get_by_role("link", name="View your receipt").click()
    expect(page.get_by_role("heading", name="Receipt")).to_be_visible()
    expect(page.get_by_text("Bread")).to_be_visible()
    expect(page.get_by_text("DEP-1")).to_be_visible()
    page.wait_for_load_state("load")  # measured with its stylesheets applied
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert violations(page, axe) == []
    shot(page, "receipt")

    with app.app_context():
        run_due_jobs()
        events = [Webhook(secret).verify(r.body, {k.lower(): v for k, v in r.headers.items()})
                  for r in receiver.requests]  # fmt: skip
        succeeded = {e["data"]["payment_request"]["id"]: e["data"] for e in events
                     if e["type"] == "payment.succeeded"}  # fmt: skip
        assert set(succeeded) == {st_id, dep_id}
        assert succeeded[st_id]["payment"]["amount"] == 3000
        assert succeeded[st_id]["allocation"] == [
            {"position": 0, "reference": "L1", "amount": 3000, "settled": True, "remaining": 0}
        ]
        assert succeeded[dep_id]["payment"]["amount"] == 5000
        assert succeeded[dep_id]["allocation"] == []
        paid = [e["data"]["payment_request"]["id"] for e in events
                if e["type"] == "payment_request.paid"]  # fmt: skip
        assert paid == [dep_id]
        # The ledger adds up: what the callbacks say = the one charge = what the requests got.
        group = db.session.scalars(select(PaymentGroup)).one()
        told = sum(d["payment"]["amount"] for d in succeeded.values())
        got = sum(db.session.get(PaymentRequest, i).amount_paid for i in (st_id, dep_id))
        assert told == group.amount == got == 8000
        assert {d["payment"]["group_id"] for d in succeeded.values()} == {group.id}
        charge = {d["payment"]["provider_payment_id"] for d in succeeded.values()}
        assert charge == {group.provider_payment_id}
