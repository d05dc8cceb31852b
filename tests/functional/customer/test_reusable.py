"""Reusable top-up links, really served: three client sessions pay three times through one
link (three payments, receipts over real SMTP, callbacks verified with standardwebhooks);
a void link refuses a fourth; a double click on the amount form makes one charge."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import requests
from sqlalchemy import select
from standardwebhooks import Webhook

from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.links import link_token
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import void_request
from portal.payments.models import Payment
from tests.factories import make_request, wallet_body
from tests.servers import HTTPRecorder, serve_wsgi

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NONCE = re.compile(r'name="nonce" value="([^"]+)"')
CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}


def reusable_body(**overrides: Any) -> dict[str, Any]:
    return wallet_body(reusable=True, **overrides)


@pytest.fixture
def served(app):
    db.session.commit()
    app.config["RATELIMIT_ENABLED"] = False
    with serve_wsgi(app) as url:
        yield url


@pytest.fixture
def receiver():
    server = HTTPRecorder(lambda req: (200, {}, b"{}")).start()
    yield server
    server.stop()


def open_form(url: str, pr_id: str) -> tuple[requests.Session, str, dict[str, str]]:
    session = requests.Session()
    link = f"{url}/p/{link_token(pr_id)}"
    page = session.get(link, timeout=30)
    assert page.status_code == 200, page.text
    form = {"csrf_token": CSRF.search(page.text)[1], "nonce": NONCE.search(page.text)[1]}
    return session, link, form


def pay(url: str, session: requests.Session, link: str, form: dict[str, str], **data: str):
    answer = session.post(f"{link}/pay", data={**form, **data}, allow_redirects=False,
                          timeout=60)  # fmt: skip
    if answer.status_code != 303:
        return answer
    checkout = url + answer.headers["Location"]
    page = session.get(checkout, timeout=30)
    card_csrf = CSRF.search(page.text)[1]
    return session.post(checkout, data={"csrf_token": card_csrf, **CARD}, timeout=60)


def children(parent_id: str) -> list[PaymentRequest]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(PaymentRequest)
            .where(PaymentRequest.parent_request_id == parent_id)
            .order_by(PaymentRequest.created_at)
        )
    )


def test_three_sessions_pay_three_times_then_void_refuses_a_fourth(
    app, merchant, served, smtp, receiver
):
    endpoint = add_endpoint(merchant.id, f"{receiver.url}/ledger")
    parent = make_request(merchant, reusable_body())
    parent_id, secret = parent.id, endpoint.secret
    db.session.commit()
    amounts = ["10,00", "25,00", "7,50"]
    for i, amount in enumerate(amounts):
        session, link, form = open_form(served, parent_id)
        done = pay(served, session, link, form, amount=amount, email=f"c{i}@example.com")
        assert done.status_code == 200, done.text
        assert f'href="/p/{link_token(parent_id)}"' in done.text  # "Recharger à nouveau"
    kids = children(parent_id)
    assert [k.status for k in kids] == ["paid"] * 3
    assert [k.amount_paid for k in kids] == [1000, 2500, 750]
    parent = db.session.get(PaymentRequest, parent_id)
    assert parent.status == "open" and parent.amount_paid == 0
    run_due_jobs()
    # Three receipts, each to the address its session gave, each with its own number.
    assert sorted(m["X-Envelope-To"] for m in smtp.messages) == [
        "c0@example.com", "c1@example.com", "c2@example.com"]  # fmt: skip
    numbers = {p.receipt_number for p in db.session.scalars(select(Payment))}
    assert len(numbers) == 3 and None not in numbers
    verified = [
        Webhook(secret).verify(r.body, {k.lower(): v for k, v in r.headers.items()})
        for r in receiver.requests
    ]
    succeeded = [e for e in verified if e["type"] == "payment.succeeded"]
    assert len(succeeded) == 3
    assert {e["data"]["payment_request"]["parent_id"] for e in succeeded} == {parent_id}
    assert {e["data"]["payment_request"]["id"] for e in succeeded} == {k.id for k in kids}
    assert sorted(e["data"]["payment"]["amount"] for e in succeeded) == [750, 1000, 2500]
    assert sum(e["type"] == "payment_request.paid" for e in verified) == 3

    session, link, form = open_form(served, parent_id)  # a page opened before the void
    void_request(merchant.merchant, parent_id)
    db.session.commit()
    refused = session.post(f"{link}/pay", data={**form, "amount": "10,00"}, timeout=30)
    assert refused.status_code == 410
    assert session.get(link, timeout=30).status_code == 410
    assert len(children(parent_id)) == 3


def test_a_double_click_makes_one_child_and_one_charge(app, merchant, served):
    parent_id = make_request(merchant, reusable_body()).id
    session, link, form = open_form(served, parent_id)
    barrier = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def click(i: int) -> None:
        barrier.wait()
        answers[i] = session.post(f"{link}/pay", data={**form, "amount": "20,00"},
                                  allow_redirects=False, timeout=60)  # fmt: skip

    threads = [threading.Thread(target=click, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [a.status_code for a in answers] == [303, 303]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    checkout = served + answers[0].headers["Location"]
    card_csrf = CSRF.search(session.get(checkout, timeout=30).text)[1]
    assert session.post(checkout, data={"csrf_token": card_csrf, **CARD}).status_code == 200
    # The same form once more after it was paid: its result, not a second charge.
    again = session.post(f"{link}/pay", data={**form, "amount": "20,00"}, timeout=60)
    assert again.status_code == 200
    kids = children(parent_id)
    assert len(kids) == 1 and kids[0].amount_paid == 2000
    payments = db.session.scalars(select(Payment)).all()
    assert [p.status for p in payments] == ["succeeded"]
    # Two tabs are two forms: two independent payments.
    for _ in range(2):
        s, lk, f = open_form(served, parent_id)
        assert pay(served, s, lk, f, amount="5,00").status_code == 200
    assert [k.amount_paid for k in children(parent_id)] == [2000, 500, 500]


def test_the_result_and_an_expired_child_lead_back_to_the_link(app, merchant, client):
    from datetime import timedelta

    from portal.db_types import utcnow
    from portal.payments.reusable import start_reusable_payment

    parent = make_request(merchant, reusable_body())
    payment = start_reusable_payment(parent, 1000, "z" * 20)
    db.session.commit()
    child = db.session.get(PaymentRequest, payment.request_id)
    back = f"/p/{link_token(parent.id)}"
    child.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    closed = client.get(f"/p/{link_token(child.id)}?lang=nl")
    assert closed.status_code == 410
    assert f'href="{back}"' in closed.text and "Opnieuw opwaarderen" in closed.text
    assert "/renew" not in closed.text  # the way on is the reusable link, not a renewal
    # The same page sent again with another amount is another payment, not this one's.
    other = start_reusable_payment(parent, 2500, "z" * 20)
    assert other.request_id != child.id and other.amount == 2500
    db.session.commit()
    # A page without a usable nonce is a form of its own.
    assert start_reusable_payment(parent, 1000, "short").request_id not in (
        child.id,
        other.request_id,
    )
    db.session.rollback()
