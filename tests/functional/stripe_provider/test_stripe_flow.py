"""The real stripe SDK over HTTP: against localstripe for the whole flow, and against a
recording server for the parameters only production uses."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import requests

from portal.extensions import db
from portal.jobs.models import Job
from portal.ledger.models import Event
from portal.links import link_token
from portal.payments.models import Payment
from portal.payments.services import prepare_payment, start_payment
from portal.providers.base import get_provider
from tests.factories import make_request
from tests.functional.stripe_provider.conftest import wait_for
from tests.servers import HTTPRecorder, json_response


def test_pay_fulfil_by_webhook_then_refund(stripe_portal, client, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None, locale="nl")
    page = prepare_payment(payment)
    db.session.commit()
    assert payment.provider == "stripe"
    assert payment.provider_payment_id.startswith("pi_")
    assert page["client_secret"] and page["publishable_key"] == "pk_test_portal"
    # a second tab reuses the same attempt and PaymentIntent
    again = start_payment(pr, None)
    assert again.id == payment.id
    assert prepare_payment(again)["client_secret"] == page["client_secret"]
    db.session.commit()
    # the browser confirms with a card; Stripe then sends the signed webhook
    state = get_provider("stripe").confirm(payment, "pm_card_visa")
    assert state.status == "succeeded"
    assert wait_for(lambda: db.session.get(Payment, payment.id).status == "succeeded"), (
        "localstripe's webhook never fulfilled the payment"
    )
    paid = db.session.get(Payment, payment.id)
    assert paid.request.status == "paid"
    events = [e.type for e in db.session.query(Event).filter_by(request_id=pr.id)]
    assert events == ["payment.succeeded", "payment_request.paid"]
    assert db.session.query(Job).filter_by(kind="send_receipt").count() == 1
    # the return page asks Stripe, and changes nothing more
    result = client.get(f"/p/{link_token(pr.id)}/return/{payment.id}")
    assert result.status_code == 200 and "Betaling ontvangen" in result.text
    # partial, then full refunds through the API, capped at what remains
    url = f"/api/v1/payments/{payment.id}/refunds"
    first = client.post(url, json={"amount": 5000}, headers=merchant.headers)
    assert first.status_code == 201, first.json
    assert first.json["payment_status"] == "partially_refunded"
    too_much = client.post(url, json={"amount": 7501}, headers=merchant.headers)
    assert too_much.status_code == 422
    assert too_much.json["error"]["code"] == "amount_exceeds_refundable"
    rest = client.post(url, json={}, headers=merchant.headers)
    assert rest.status_code == 201 and rest.json["amount"] == 7500
    assert rest.json["payment_status"] == "refunded"
    refunds = requests.get(
        f"{stripe_portal.config['PORTAL_STRIPE_API_BASE']}/v1/refunds",
        auth=("sk_test_portal", ""),
        timeout=5,
    ).json()["data"]
    assert sorted(r["amount"] for r in refunds) == [5000, 7500]
    types = [e.type for e in db.session.query(Event).filter_by(request_id=pr.id)]
    assert types.count("payment.refunded") == 2


def test_declined_card_fails_the_attempt(stripe_portal, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None)
    prepare_payment(payment)
    db.session.commit()
    pm = requests.post(
        f"{stripe_portal.config['PORTAL_STRIPE_API_BASE']}/v1/payment_methods",
        auth=("sk_test_portal", ""),
        data={"type": "card", "card[number]": "4000000000000341", "card[exp_month]": "12",
              "card[exp_year]": "2039", "card[cvc]": "123"},
        timeout=5,
    ).json()  # fmt: skip
    state = get_provider("stripe").confirm(payment, pm["id"])
    assert state.status == "failed" and state.failure_code


def test_production_parameters(app, merchant):
    """automatic_payment_methods, the Idempotency-Key and Stripe-Account headers."""
    intent = {
        "id": "pi_recorded", "object": "payment_intent", "amount": 12500, "currency": "eur",
        "status": "requires_payment_method", "client_secret": "pi_recorded_secret_x",
        "metadata": {},
    }  # fmt: skip
    recorder = HTTPRecorder(lambda req: json_response(200, intent)).start()
    try:
        app.config.update(
            PORTAL_PAYMENT_PROVIDER="stripe",
            PORTAL_STRIPE_SECRET_KEY="sk_live_like",
            PORTAL_STRIPE_API_BASE=recorder.url,
            PORTAL_STRIPE_PAYMENT_METHOD_TYPES=[],
        )
        merchant.merchant.stripe_account = "acct_connected_1"
        db.session.commit()
        pr = make_request(merchant)
        payment = start_payment(pr, None)
        data = prepare_payment(payment)
        assert data["client_secret"] == "pi_recorded_secret_x"
        [create] = recorder.requests
        assert create.method == "POST" and create.path == "/v1/payment_intents"
        form = parse_qs(create.body.decode())
        assert form["amount"] == ["12500"] and form["currency"] == ["eur"]
        assert form["automatic_payment_methods[enabled]"] == ["true"]
        assert "payment_method_types[0]" not in form
        assert "receipt_email" not in form
        assert form["metadata[payment_id]"] == [payment.id]
        assert form["metadata[payment_request_id]"] == [pr.id]
        assert create.headers["Idempotency-Key"] == f"portal-pi-{payment.id}"
        assert create.headers["Stripe-Account"] == "acct_connected_1"
        assert create.headers["Authorization"] == "Bearer sk_live_like"
    finally:
        recorder.stop()


def test_stripe_checkout_page_loads_stripe_js_with_a_strict_csp(stripe_portal, client, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None)
    prepare_payment(payment)
    db.session.commit()
    resp = client.get(f"/p/{link_token(pr.id)}/checkout/{payment.id}")
    assert resp.status_code == 200
    js_url = stripe_portal.config["PORTAL_STRIPE_JS_URL"]
    assert f'src="{js_url}"' in resp.text
    assert "pk_test_portal" in resp.text
    csp = resp.headers["Content-Security-Policy"]
    origin = js_url.split("/js.stripe.com")[0]
    assert "script-src 'self' 'nonce-" in csp and origin in csp
    assert "unsafe-inline" not in csp
    config = json.loads(
        resp.text.split('id="stripe-config" type="application/json">')[1].split("</script>")[0]
    )
    assert config["clientSecret"].startswith("pi_")
    assert config["returnUrl"].endswith(f"/return/{payment.id}")
