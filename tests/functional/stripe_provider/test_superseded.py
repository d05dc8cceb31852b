"""Stripe, with the real SDK over HTTP: a replaced attempt is canceled at Stripe, money that
still arrives for a closed attempt is applied or refunded at Stripe, a webhook's bare
charge id is looked up for the receipt, and a constraint that fails while handling a real
event is a retry, never a "duplicate"."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import update

from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.payments.services import fulfil_payment, prepare_payment, start_payment
from portal.providers.base import get_provider
from tests.factories import make_request, statement_body
from tests.functional.stripe_provider.conftest import WEBHOOK_SECRET, intent_event, sign, wait_for
from tests.servers import HTTPRecorder, json_response


def at_stripe(app, path: str) -> dict:
    base = app.config["PORTAL_STRIPE_API_BASE"]
    return requests.get(f"{base}{path}", auth=("sk_test_portal", ""), timeout=10).json()


def test_another_amount_cancels_the_old_paymentintent_at_stripe(stripe_portal, merchant):
    pr = make_request(merchant, statement_body(allow_partial=True))
    old = start_payment(pr, 5000)
    prepare_payment(old)
    db.session.commit()
    old_intent = old.provider_payment_id
    new = start_payment(db.session.get(PaymentRequest, pr.id), 6000)
    prepare_payment(new)
    db.session.commit()
    assert at_stripe(stripe_portal, f"/v1/payment_intents/{old_intent}")["status"] == "canceled"
    db.session.expire_all()
    old = db.session.get(Payment, old.id)
    assert old.status == "canceled" and old.failure_code == "superseded"
    # The old tab's confirmation is refused by Stripe itself: nothing can be charged there.
    state = None
    try:
        state = get_provider("stripe").confirm(old, "pm_card_visa")
    except Exception as exc:  # the SDK's error, wrapped: nothing succeeded
        assert "payment_intent" in str(exc).lower() or "bad request" in str(exc).lower()
    assert state is None or state.status != "succeeded"
    assert at_stripe(stripe_portal, f"/v1/payment_intents/{old_intent}")["status"] == "canceled"


def test_money_for_a_closed_attempt_is_refunded_at_stripe(stripe_portal, client, merchant):
    """The confirmation crossed the cancel: Stripe took the money of an attempt the portal had
    closed, after another payment had settled the request. It goes back, at Stripe."""
    pr = make_request(merchant)
    stale = start_payment(pr, None)
    prepare_payment(stale)
    db.session.commit()
    # The portal closed the stale attempt (its cancel crossed the customer's confirmation)...
    db.session.execute(update(Payment).where(Payment.id == stale.id).values(status="canceled"))
    db.session.commit()
    other = start_payment(db.session.get(PaymentRequest, pr.id), None)
    prepare_payment(other)
    db.session.commit()
    assert fulfil_payment(other.id)  # ...and another payment paid the request.
    db.session.commit()
    # Stripe confirms the stale one anyway; its signed webhook reaches the portal.
    assert get_provider("stripe").confirm(stale, "pm_card_visa").status == "succeeded"
    assert wait_for(lambda: db.session.get(Payment, stale.id).refund_due == "request_closed")
    run_due_jobs()
    db.session.expire_all()
    stale = db.session.get(Payment, stale.id)
    assert stale.status == "refunded" and not stale.applied
    refunds = at_stripe(stripe_portal, "/v1/refunds")["data"]
    assert [(r["payment_intent"], r["amount"]) for r in refunds] == [
        (stale.provider_payment_id, 12500)
    ]
    pr = db.session.get(PaymentRequest, pr.id)
    assert pr.amount_paid == 12500 and pr.amount_refunded == 0


def test_a_webhook_naming_the_charge_by_id_gets_the_card_for_the_receipt(app, client, merchant):
    """Real ``payment_intent.succeeded`` events carry ``latest_charge`` as an id."""
    expanded = {
        "id": "pi_bare", "object": "payment_intent", "amount": 12500, "currency": "eur",
        "status": "succeeded", "metadata": {},
        "latest_charge": {
            "id": "ch_bare", "object": "charge",
            "payment_method_details": {"type": "card", "card": {"brand": "mastercard",
                                                                 "last4": "4444"}},
        },
    }  # fmt: skip
    recorder = HTTPRecorder(lambda req: json_response(200, expanded)).start()
    try:
        app.config.update(
            PORTAL_PAYMENT_PROVIDER="stripe",
            PORTAL_STRIPE_SECRET_KEY="sk_test_recorded",
            PORTAL_STRIPE_API_BASE=recorder.url,
            PORTAL_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        )
        payment = start_payment(make_request(merchant), None)
        payment.provider_payment_id = "pi_bare"
        db.session.commit()
        body = intent_event(payment, latest_charge="ch_bare")
        resp = client.post(
            "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)},
            content_type="application/json",
        )  # fmt: skip
        assert resp.status_code == 200, resp.json
        [retrieve] = recorder.requests
        assert retrieve.method == "GET"
        parts = urlsplit(retrieve.path)
        assert parts.path == "/v1/payment_intents/pi_bare"
        assert parse_qs(parts.query) == {"expand[0]": ["latest_charge"]}
        db.session.expire_all()
        payment = db.session.get(Payment, payment.id)
        assert (payment.card_brand, payment.card_last4) == ("mastercard", "4444")
        assert payment.provider_charge_id == "ch_bare" and payment.method_type == "card"
        receipt = client.get(f"/p/{_token(payment)}/receipt/{payment.id}")
        assert "Mastercard •••• 4444" in receipt.text
    finally:
        recorder.stop()


def _token(payment: Payment) -> str:
    from portal.links import link_token

    return link_token(payment.request_id)


def test_a_constraint_failing_on_a_real_event_is_a_retry_not_a_duplicate(app, client, merchant):
    app.config.update(PORTAL_PAYMENT_PROVIDER="stripe", PORTAL_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    first = start_payment(make_request(merchant), None)
    fulfil_payment(first.id)  # receipt R-000001
    db.session.commit()
    payment = start_payment(make_request(merchant, statement_body(reference="S2")), None)
    payment.provider_payment_id = "pi_second"
    # A restored backup set the merchant's receipt sequence back: the next number is taken.
    db.session.execute(update(Merchant).where(Merchant.id == merchant.id).values(receipt_seq=0))
    db.session.commit()
    body = intent_event(payment)
    resp = client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)},
        content_type="application/json",
    )  # fmt: skip
    assert resp.status_code == 503 and resp.json["error"]["code"] == "retry"
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).status == "pending"
    # Once the sequence is right again, Stripe's retry of the same event is handled.
    db.session.execute(update(Merchant).where(Merchant.id == merchant.id).values(receipt_seq=1))
    db.session.commit()
    retry = client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)},
        content_type="application/json",
    )  # fmt: skip
    assert retry.status_code == 200 and retry.json["outcome"] == "succeeded: applied"
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).receipt_number == "R-000002"


def test_stripe_unreachable_is_a_friendly_try_again_not_a_500(app, client, merchant):
    from tests.functional.customer.test_pages import csrf, page
    from tests.servers import free_port

    app.config.update(
        PORTAL_PAYMENT_PROVIDER="stripe",
        PORTAL_STRIPE_SECRET_KEY="sk_test_x",
        PORTAL_STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}",  # nothing listens there
    )
    pr = make_request(merchant)
    opened = page(client, pr)
    resp = client.post(f"/p/{_token_of(pr)}/pay", data={"csrf_token": csrf(opened)})
    assert resp.status_code == 503
    assert "De betaaldienst antwoordde niet. Er is niets aangerekend" in resp.text
    assert db.session.query(Payment).filter(Payment.status == "pending").count() <= 1
    assert db.session.get(PaymentRequest, pr.id).amount_paid == 0


def _token_of(pr) -> str:
    from portal.links import link_token

    return link_token(pr.id)
