"""A refund waits for Stripe without holding the request's row lock (PostgreSQL, racing):
the request stays lockable meanwhile, and refunds racing still refund once (both engines)."""

from __future__ import annotations

import json
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

import portal.providers.stripe  # noqa: F401 - registers the provider the payment names
from portal.extensions import db
from portal.payments.models import Payment, Refund
from portal.payments.services import fulfil_payment, start_payment
from tests.conftest import _sa_url
from tests.factories import make_merchant, make_request
from tests.servers import HTTPRecorder, wait_until


class SlowStripe:
    """POST /v1/refunds waits until ``release`` is set, then succeeds."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.recorder = HTTPRecorder(self._respond).start()

    def _respond(self, req):
        self.release.wait(60)
        amount = int(req.form()["amount"][0])
        body = {"id": f"re_slow_{len(self.recorder.requests)}", "object": "refund",
                "amount": amount, "currency": "eur", "status": "succeeded"}  # fmt: skip
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _paid_stripe_payment(m) -> Payment:
    pr = make_request(m)
    payment = start_payment(pr, None)
    payment.provider, payment.provider_payment_id = "stripe", f"pi_{payment.id}"
    fulfil_payment(payment.id)
    db.session.commit()
    return db.session.get(Payment, payment.id)


def test_a_refund_waiting_for_stripe_leaves_the_request_unlocked(pg_app, pg_url):
    stripe = SlowStripe()
    pg_app.config.update(
        PORTAL_STRIPE_SECRET_KEY="sk_test_slow", PORTAL_STRIPE_API_BASE=stripe.recorder.url
    )
    m = make_merchant()
    payment = _paid_stripe_payment(m)
    request_id, payment_id = payment.request_id, payment.id
    answers: list[int] = []

    def refund() -> None:
        resp = pg_app.test_client().post(
            f"/api/v1/payments/{payment_id}/refunds", json={"amount": 500}, headers=m.headers
        )
        answers.append(resp.status_code)

    other = create_engine(_sa_url(pg_url))
    thread = threading.Thread(target=refund)
    thread.start()
    try:
        assert wait_until(lambda: stripe.recorder.requests, 30), "Stripe was not asked"
        # Stripe is thinking: another transaction takes the request's row at once.
        with other.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            locked = conn.execute(
                text("SELECT id FROM payment_requests WHERE id = :id FOR UPDATE NOWAIT"),
                {"id": request_id},
            ).scalar()
        assert locked == request_id
    finally:
        stripe.release.set()
        thread.join(60)
        stripe.recorder.stop()
        other.dispose()
    assert answers == [201]
    db.session.expire_all()
    assert db.session.get(Payment, payment_id).amount_refunded == 500


def test_two_full_refunds_racing_refund_once(app):
    """On both engines: the advisory lock (PostgreSQL), the one writer (SQLite)."""
    pg_app = app
    stripe = SlowStripe()
    stripe.release.set()
    pg_app.config.update(
        PORTAL_STRIPE_SECRET_KEY="sk_test_race", PORTAL_STRIPE_API_BASE=stripe.recorder.url
    )
    m = make_merchant()
    payment = _paid_stripe_payment(m)
    payment_id = payment.id
    barrier = threading.Barrier(4)
    answers: list[int] = []

    def refund() -> None:
        client = pg_app.test_client()
        barrier.wait()
        resp = client.post(f"/api/v1/payments/{payment_id}/refunds", json={}, headers=m.headers)
        answers.append(resp.status_code)

    threads = [threading.Thread(target=refund) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stripe.recorder.stop()
    assert sorted(answers) == [201, 409, 409, 409]
    assert len([r for r in stripe.recorder.requests if r.path == "/v1/refunds"]) == 1
    db.session.expire_all()
    assert db.session.query(Refund).filter_by(payment_id=payment_id).count() == 1
    assert db.session.get(Payment, payment_id).status == "refunded"


def test_the_request_lock_check_itself_can_fail(pg_app, pg_url):
    """The probe above is real: while a transaction holds the row, NOWAIT refuses."""
    m = make_merchant()
    payment = _paid_stripe_payment(m)
    other = create_engine(_sa_url(pg_url))
    try:
        db.session.execute(
            text("SELECT id FROM payment_requests WHERE id = :id FOR UPDATE"),
            {"id": payment.request_id},
        )
        with other.begin() as conn:
            try:
                conn.execute(
                    text("SELECT id FROM payment_requests WHERE id = :id FOR UPDATE NOWAIT"),
                    {"id": payment.request_id},
                )
                refused = False
            except OperationalError:
                refused = True
        assert refused
    finally:
        db.session.rollback()
        other.dispose()
