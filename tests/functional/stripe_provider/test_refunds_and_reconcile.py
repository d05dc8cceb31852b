"""Refunds through the API (sandbox payments too) and the reconciliation of stuck payments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.worker import run_periodic
from portal.ledger.models import Event
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment, Refund
from portal.payments.services import fulfil_payment, start_payment
from tests.factories import make_merchant, make_request
from tests.servers import HTTPRecorder, json_response


def paid(m) -> Payment:
    payment = start_payment(make_request(m), None)
    fulfil_payment(payment.id)
    db.session.commit()
    return db.session.get(Payment, payment.id)


def url(payment_id: str) -> str:
    return f"/api/v1/payments/{payment_id}/refunds"


def test_sandbox_full_refund(client, merchant):
    payment = paid(merchant)
    resp = client.post(url(payment.id), headers=merchant.headers)
    assert resp.status_code == 201, resp.json
    assert resp.json["amount"] == 12500 and resp.json["payment_status"] == "refunded"
    db.session.expire_all()
    refund = db.session.query(Refund).one()
    assert refund.provider_refund_id.startswith("sbre_")
    pr = db.session.get(PaymentRequest, payment.request_id)
    assert pr.amount_refunded == 12500
    event = db.session.query(Event).filter_by(type="payment.refunded").one()
    assert event.data["refund"]["amount"] == 12500
    again = client.post(url(payment.id), headers=merchant.headers)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "payment_not_refundable"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": 0}, 422, "amount_below_minimum"),
        ({"amount": "5"}, 422, "invalid_type"),
        ({"amount": 12501}, 422, "amount_exceeds_refundable"),
        ({"colour": "red"}, 422, "unknown_field"),
    ],
)
def test_bad_refunds(client, merchant, body, status, code):
    payment = paid(merchant)
    resp = client.post(url(payment.id), json=body, headers=merchant.headers)
    assert resp.status_code == status
    assert resp.json["error"]["code"] == code
    assert db.session.query(Refund).count() == 0


def test_refund_scope_and_state(client, merchant):
    other = make_merchant(name="Other")
    payment = paid(other)
    assert client.post(url(payment.id), headers=merchant.headers).status_code == 404
    pending = start_payment(make_request(merchant), None)
    resp = client.post(url(pending.id), headers=merchant.headers)
    assert resp.status_code == 409


def test_refund_is_idempotent_with_a_key(client, merchant):
    payment = paid(merchant)
    headers = {**merchant.headers, "Idempotency-Key": "refund-1"}
    a = client.post(url(payment.id), json={"amount": 1000}, headers=headers)
    b = client.post(url(payment.id), json={"amount": 1000}, headers=headers)
    assert a.json == b.json and b.headers["Idempotent-Replayed"] == "true"
    assert db.session.query(Refund).count() == 1


def test_reconciliation_settles_a_payment_whose_webhook_was_lost(app, merchant):
    payment = start_payment(make_request(merchant), None)
    payment.provider = "stripe"
    payment.provider_payment_id = "pi_lost_webhook"
    payment.status = "processing"
    payment.updated_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    intent = {
        "id": "pi_lost_webhook", "object": "payment_intent", "amount": 12500,
        "currency": "eur", "status": "succeeded", "metadata": {},
        "latest_charge": {"id": "ch_x", "payment_method_details": {
            "type": "card", "card": {"brand": "visa", "last4": "4242"}}},
    }  # fmt: skip
    recorder = HTTPRecorder(lambda req: json_response(200, intent)).start()
    try:
        app.config.update(PORTAL_STRIPE_API_BASE=recorder.url, PORTAL_STRIPE_SECRET_KEY="sk_test")
        run_periodic()
        [req] = recorder.requests
        assert req.method == "GET" and req.path.startswith("/v1/payment_intents/pi_lost_webhook")
        db.session.expire_all()
        settled = db.session.get(Payment, payment.id)
        assert settled.status == "succeeded" and settled.card_last4 == "4242"
        run_periodic()  # settled payments are not asked again
        assert len(recorder.requests) == 1
    finally:
        recorder.stop()
