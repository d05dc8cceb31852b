"""Double clicks and second tabs, really raced: threads against a served portal (werkzeug's
threaded server, as ``flask run`` serves it, and gunicorn as deployed), on SQLite and
PostgreSQL. Whatever the timing, one attempt is charged once and fulfilled once, and no
more is ever settled than the request asks."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from portal.extensions import db
from portal.jobs.models import Job
from portal.ledger.models import Event
from portal.links import link_token
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from tests.conftest import TEST_SECRET
from tests.factories import make_request, statement_body
from tests.servers import free_port, serve_wsgi

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}


@contextlib.contextmanager
def gunicorn(app, log: Path) -> Iterator[str]:
    """The portal under gunicorn with the committed configuration (2 workers x 4 threads)."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "PORTAL_ENV": "development",
        "PORTAL_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "PORTAL_SECRET_KEYS": TEST_SECRET,
        "PORTAL_MAIL_URL": "console",
        "PORTAL_RATE_LIMITS": "0",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BIN / "gunicorn", "-c", "gunicorn.conf.py", "portal:create_app()"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=5)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(params=["flask-run", "gunicorn"])
def served(request, app, tmp_path) -> Iterator[str]:
    """The app's database served by a real multi-threaded (or multi-process) server."""
    db.session.commit()  # the test's own session holds no transaction while others write
    if request.param == "gunicorn":
        with gunicorn(app, tmp_path / "gunicorn.log") as url:
            yield url
    else:
        app.config["RATELIMIT_ENABLED"] = False
        with serve_wsgi(app) as url:
            yield url


def race(n: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``n`` threads released at the same instant; returns the results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(i)
        except Exception as exc:  # the assertion below shows it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def open_link(url: str, pr_id: str, session: requests.Session | None = None):
    session = session or requests.Session()
    link = f"{url}/p/{link_token(pr_id)}"
    page = session.get(link, timeout=30)
    assert page.status_code == 200, page.text
    return session, link, CSRF.search(page.text).group(1)


def start(session: requests.Session, link: str, csrf: str, amount: str | None = None) -> str:
    data = {"csrf_token": csrf, **({"amount": amount} if amount else {})}
    answer = session.post(f"{link}/pay", data=data, allow_redirects=False, timeout=60)
    assert answer.status_code == 303, answer.text
    return answer.headers["Location"]


def start_and_pay(url: str, tab: tuple[requests.Session, str, str], amount: str) -> int:
    """Ask for ``amount`` in a tab and pay what it was given: the card form's status, or
    the pay form's when the amount was refused (what another tab paid changed the rules)."""
    session, link, csrf = tab
    data = {"csrf_token": csrf, "amount": amount}
    answer = session.post(f"{link}/pay", data=data, allow_redirects=False, timeout=60)
    if answer.status_code != 303:
        return answer.status_code
    checkout = url + answer.headers["Location"]
    page = session.get(checkout, timeout=30)
    if "card_number" not in page.text:
        return page.status_code  # another tab replaced this attempt: its result page
    card_csrf = CSRF.search(page.text).group(1)
    return session.post(checkout, data={"csrf_token": card_csrf, **CARD}, timeout=60).status_code


def counts(pr_id: str) -> dict[str, Any]:
    db.session.expire_all()
    pr = db.session.get(PaymentRequest, pr_id)
    payments = db.session.scalars(select(Payment).where(Payment.request_id == pr_id)).all()
    succeeded = [p for p in payments if p.status == "succeeded"]
    event_types = db.session.scalars(select(Event.type).where(Event.request_id == pr_id)).all()
    receipts = db.session.scalar(select(func.count(Job.id)).where(Job.kind == "send_receipt"))
    return {
        "status": pr.status,
        "amount_paid": pr.amount_paid,
        "succeeded": len(succeeded),
        "charged": sum(p.amount for p in succeeded),
        "receipt_numbers": {p.receipt_number for p in succeeded},
        "succeeded_events": event_types.count("payment.succeeded"),
        "paid_events": event_types.count("payment_request.paid"),
        "receipt_jobs": receipts,
    }


def test_eight_clicks_on_pay_fulfil_once(app, merchant, served):
    pr_id = make_request(merchant).id
    session, link, csrf = open_link(served, pr_id)
    checkout = served + start(session, link, csrf)
    card_csrf = CSRF.search(session.get(checkout, timeout=30).text).group(1)

    answers = race(8, lambda _: session.post(checkout, data={"csrf_token": card_csrf, **CARD},
                                             timeout=60).status_code)  # fmt: skip

    assert all(a == 200 for a in answers), answers
    seen = counts(pr_id)
    assert seen["status"] == "paid" and seen["amount_paid"] == 12500
    assert seen["succeeded"] == 1 and len(seen["receipt_numbers"]) == 1
    assert seen["succeeded_events"] == 1 and seen["paid_events"] == 1
    assert seen["receipt_jobs"] == 1


def test_four_tabs_with_partial_payments_never_settle_more_than_is_due(app, merchant, served):
    pr_id = make_request(merchant, statement_body(amount=5000, allow_partial=True)).id
    tabs = [open_link(served, pr_id) for _ in range(4)]

    # Every tab asks for the whole amount at once, then pays what it was given.
    answers = race(4, lambda i: start_and_pay(served, tabs[i], "50,00"))

    # A tab that asks after another has paid is told there is nothing left (422).
    assert all(a in (200, 422) for a in answers) and 200 in answers, answers
    seen = counts(pr_id)
    assert seen["charged"] == 5000 and seen["amount_paid"] == 5000, seen
    assert seen["succeeded"] == 1 and seen["succeeded_events"] == 1 and seen["paid_events"] == 1


def test_tabs_choosing_different_amounts_settle_at_most_the_amount_due(app, merchant, served):
    pr_id = make_request(merchant, statement_body(amount=5000, allow_partial=True)).id
    tabs = [open_link(served, pr_id) for _ in range(4)]
    amounts = ["20,00", "30,00", "40,00", "50,00"]

    answers = race(4, lambda i: start_and_pay(served, tabs[i], amounts[i]))

    assert all(a in (200, 422) for a in answers), answers
    seen = counts(pr_id)
    assert 0 < seen["charged"] <= 5000, seen
    assert seen["amount_paid"] == seen["charged"]
    assert seen["succeeded_events"] == seen["succeeded"]
