"""``/webhooks/stripe``: signatures, duplicates, order, mismatches and races."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.jobs.models import Job
from portal.ledger.models import Event
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.payments.services import apply_provider_payment, start_payment
from portal.providers.base import ProviderPayment
from tests.factories import make_merchant, make_request
from tests.functional.stripe_provider.conftest import WEBHOOK_SECRET, intent_event, sign

URL = "/webhooks/stripe"


@pytest.fixture
def stripe_app(app):
    app.config["PORTAL_PAYMENT_PROVIDER"] = "stripe"
    app.config["PORTAL_STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    return app


def stripe_payment(m, **kw) -> Payment:
    pr = make_request(m)
    payment = start_payment(pr, None)
    payment.provider_payment_id = kw.get("pi", f"pi_{payment.id}")
    db.session.commit()
    return payment


def post(client, body: bytes, signature: str | None = None):
    headers = {"Stripe-Signature": signature if signature is not None else sign(body)}
    return client.post(URL, data=body, headers=headers, content_type="application/json")


def counts(pr_id):
    events = [e.type for e in db.session.scalars(select(Event).where(Event.request_id == pr_id))]
    receipts = db.session.scalar(select(func.count(Job.id)).where(Job.kind == "send_receipt"))
    return events, receipts


def test_succeeded_event_fulfils(stripe_app, client, merchant):
    payment = stripe_payment(merchant)
    resp = post(client, intent_event(payment))
    assert resp.status_code == 200, resp.json
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "succeeded" and payment.card_last4 == "4242"
    assert payment.provider_charge_id == "ch_test_1"
    assert counts(payment.request_id) == (["payment.succeeded", "payment_request.paid"], 1)


@pytest.mark.parametrize("kind", ["missing", "malformed", "other_body", "wrong_secret"])
def test_bad_signatures_are_400(stripe_app, client, merchant, kind):
    payment = stripe_payment(merchant)
    body = intent_event(payment)
    signature = {
        "missing": "",
        "malformed": "t=1,v1=abc",
        "other_body": sign(b"other body"),
        "wrong_secret": sign(body, secret="whsec_wrong"),
    }[kind]
    resp = post(client, body, signature)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_signature"
    assert db.session.get(Payment, payment.id).status == "pending"


def test_stale_timestamp_is_400(stripe_app, client, merchant):
    payment = stripe_payment(merchant)
    body = intent_event(payment)
    resp = post(client, body, sign(body, timestamp=int(time.time()) - 3600))
    assert resp.status_code == 400


def test_unparsable_but_signed_body_is_400(stripe_app, client):
    body = b"not json"
    assert post(client, body).status_code == 400
    body = json.dumps({"hello": "world"}).encode()
    assert post(client, body).status_code == 400


def test_duplicate_event_is_ignored(stripe_app, client, merchant):
    payment = stripe_payment(merchant)
    body = intent_event(payment)
    assert post(client, body).json["outcome"] == "succeeded: applied"
    again = post(client, body)
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert counts(payment.request_id) == (["payment.succeeded", "payment_request.paid"], 1)


def test_out_of_order_events_never_go_backwards(stripe_app, client, merchant):
    payment = stripe_payment(merchant)
    post(client, intent_event(payment, "payment_intent.succeeded"))
    post(client, intent_event(payment, "payment_intent.processing"))
    post(client, intent_event(payment, "payment_intent.payment_failed"))
    post(client, intent_event(payment, "payment_intent.canceled"))
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).status == "succeeded"
    assert counts(payment.request_id)[0] == ["payment.succeeded", "payment_request.paid"]


def test_processing_then_failed(stripe_app, client, merchant):
    payment = stripe_payment(merchant)
    post(client, intent_event(payment, "payment_intent.processing"))
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).status == "processing"
    post(client, intent_event(payment, "payment_intent.payment_failed"))
    db.session.expire_all()
    failed = db.session.get(Payment, payment.id)
    assert failed.status == "failed" and failed.failure_code == "card_declined"
    assert counts(payment.request_id)[0] == ["payment.failed"]


@pytest.mark.parametrize(
    "changes",
    [{"amount": 100}, {"currency": "usd"}],
)
def test_amount_or_currency_mismatch_is_flagged(stripe_app, client, merchant, changes):
    payment = stripe_payment(merchant)
    post(client, intent_event(payment, **changes))
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "pending" and payment.flagged
    assert db.session.get(PaymentRequest, payment.request_id).status == "open"


def test_request_link_mismatch_is_flagged(stripe_app, client, merchant):
    payment = stripe_payment(merchant)
    post(client, intent_event(payment, metadata={"payment_request_id": "pr_other"}))
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.flagged and payment.status == "pending"


def test_connect_events_must_come_from_the_merchants_account(stripe_app, client, app):
    m = make_merchant()
    m.merchant.stripe_account = "acct_shop"
    db.session.commit()
    payment = stripe_payment(m)
    post(client, intent_event(payment, account="acct_someone_else", event_id="evt_a"))
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).flagged
    assert db.session.get(Payment, payment.id).status == "pending"
    post(client, intent_event(payment, account="acct_shop", event_id="evt_b"))
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).status == "succeeded"


def test_charge_refunded_and_dispute(stripe_app, client, merchant):
    payment = stripe_payment(merchant)
    post(client, intent_event(payment))
    charge = {
        "id": "ch_test_1",
        "object": "charge",
        "payment_intent": payment.provider_payment_id,
        "amount_refunded": 2500,
    }
    body = json.dumps(
        {"id": "evt_refund", "type": "charge.refunded", "data": {"object": charge}}
    ).encode()
    assert post(client, body).json["outcome"] == "refunds recorded"
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "partially_refunded" and payment.amount_refunded == 2500
    assert "payment.refunded" in counts(payment.request_id)[0]
    dispute = {"id": "dp_1", "charge": "ch_test_1", "reason": "fraudulent"}
    body = json.dumps(
        {"id": "evt_dispute", "type": "charge.dispute.created", "data": {"object": dispute}}
    ).encode()
    assert post(client, body).json["outcome"] == "dispute flagged"
    db.session.expire_all()
    assert "fraudulent" in db.session.get(Payment, payment.id).flagged_reason


def _threads(count, target):
    barrier = threading.Barrier(count)
    errors = []

    def run(i):
        barrier.wait()
        try:
            target(i)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_twenty_concurrent_deliveries_fulfil_once(pg_app):
    pg_app.config["PORTAL_PAYMENT_PROVIDER"] = "stripe"
    pg_app.config["PORTAL_STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    m = make_merchant()
    payment = stripe_payment(m)
    body = intent_event(payment)
    statuses = []

    def deliver(_):
        resp = post(pg_app.test_client(), body)
        statuses.append(resp.status_code)

    assert _threads(20, deliver) == []
    assert statuses == [200] * 20
    db.session.expire_all()
    assert counts(payment.request_id) == (["payment.succeeded", "payment_request.paid"], 1)


def test_webhook_and_return_page_race(pg_app):
    """Half the threads are webhooks, half the customer's return page: one fulfilment."""
    pg_app.config["PORTAL_PAYMENT_PROVIDER"] = "stripe"
    pg_app.config["PORTAL_STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    m = make_merchant()
    payment = stripe_payment(m)
    pid = payment.id
    state = ProviderPayment(status="succeeded", amount=payment.amount, currency="EUR")

    def race(i):
        if i % 2:
            body = intent_event(payment, event_id=f"evt_race_{i}")
            assert post(pg_app.test_client(), body).status_code == 200
        else:
            with pg_app.app_context():
                apply_provider_payment(pid, state, source="return")
                db.session.commit()
                db.session.remove()

    assert _threads(10, race) == []
    db.session.expire_all()
    assert counts(payment.request_id) == (["payment.succeeded", "payment_request.paid"], 1)


def test_a_refund_event_before_the_success_event_ends_in_the_same_books(
    stripe_app, client, merchant
):
    """Stripe does not order its events: charge.refunded may come first. The refund is kept
    and booked when the success arrives, as if they had come in order."""
    payment = stripe_payment(merchant)
    charge = {"id": "ch_test_1", "object": "charge", "payment_intent": payment.provider_payment_id,
              "amount_refunded": 2500}  # fmt: skip
    body = json.dumps({"id": "evt_early_refund", "type": "charge.refunded",
                       "data": {"object": charge}}).encode()  # fmt: skip
    assert post(client, body).status_code == 200
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).amount_refunded == 0  # nothing to refund yet
    assert post(client, intent_event(payment)).status_code == 200
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "partially_refunded" and payment.amount_refunded == 2500
    assert payment.refunds[0].source == "provider"
    pr = db.session.get(PaymentRequest, payment.request_id)
    assert (pr.amount_paid, pr.amount_refunded) == (12500, 2500)
    assert counts(payment.request_id)[0] == [
        "payment.succeeded", "payment_request.paid", "payment.refunded",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["sandbox", "base", "circuit", "paypal"])
def test_only_a_provider_with_webhooks_has_a_webhook_endpoint(stripe_app, client, name):
    resp = client.post(f"/webhooks/{name}", data=b"{}", content_type="application/json")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"


# --- hostile input: a 4xx (or a 200 "ignored"), never a 5xx nor a retry loop ----------


@pytest.mark.parametrize(
    "signature",
    [
        "t=1,v1=caf\u00e9",
        "t=\u00e9\u00e9,v1=abc",
        "t=1,v1=abc\u00ff",
        "t=99999999999999999999,v1=ab",
    ],
)
def test_a_signature_with_non_ascii_or_absurd_parts_is_400(stripe_app, client, merchant, signature):
    payment = stripe_payment(merchant)
    resp = post(client, intent_event(payment), signature)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_signature"


def _object_of(payment, **changes) -> dict:
    return json.loads(intent_event(payment))["data"]["object"] | changes


@pytest.mark.parametrize(
    "make_body",
    [
        lambda p: [1, 2, 3],
        lambda p: ["evt_1", {"type": "payment_intent.succeeded"}],
        lambda p: {"id": "evt_no_type", "object": "event", "data": {"object": {}}},
        lambda p: {"id": "evt_no_data", "type": "payment_intent.succeeded"},
        lambda p: {"id": 42, "type": "payment_intent.succeeded", "data": {"object": {}}},
        lambda p: {"id": "evt_" + "x" * 200, "type": "ping", "data": {"object": {}}},
        lambda p: {"id": "evt_acct", "type": "ping", "account": "acct_" + "x" * 64,
                   "data": {"object": {}}},
        lambda p: {"id": "evt_s", "type": "payment_intent.succeeded", "data": {"object": "pi_1"}},
        lambda p: {"id": "evt_l", "type": "payment_intent.succeeded", "data": {"object": [p.id]}},
        lambda p: {"id": "evt_d", "type": "payment_intent.succeeded", "data": "nothing"},
        lambda p: {"id": "evt_i", "type": "payment_intent.succeeded",
                   "data": {"object": _object_of(p, id=["pi_1"])}},
        lambda p: {"id": "evt_m", "type": "payment_intent.succeeded",
                   "data": {"object": _object_of(p, metadata="pr_1")}},
        lambda p: {"id": "evt_e", "type": "payment_intent.payment_failed",
                   "data": {"object": _object_of(p, last_payment_error="declined")}},
        lambda p: {"id": "evt_a", "type": "payment_intent.succeeded",
                   "data": {"object": _object_of(p, amount="1000")}},
        lambda p: {"id": "evt_c", "type": "payment_intent.succeeded",
                   "data": {"object": _object_of(p, latest_charge={"payment_method_details": 7})}},
        lambda p: {"id": "evt_r", "type": "charge.refunded",
                   "data": {"object": {"id": "ch_1", "payment_intent": p.provider_payment_id,
                                       "amount_refunded": -5}}},
        lambda p: {"id": "evt_q", "type": "charge.refunded",
                   "data": {"object": {"id": {"$ne": 1}, "amount_refunded": 1}}},
    ],
)  # fmt: skip
def test_signed_bodies_that_are_not_events_are_400_and_change_nothing(
    stripe_app, client, merchant, make_body, caplog
):
    payment = stripe_payment(merchant)
    body = json.dumps(make_body(payment)).encode()
    resp = post(client, body)
    assert resp.status_code == 400, resp.json
    assert resp.json["error"]["code"] == "invalid_event"
    assert post(client, body).status_code == 400  # the same answer again: no state kept
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).status == "pending"
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a client's input"


def test_deeply_nested_signed_json_is_400(stripe_app, client):
    body = b"[" * 100_000 + b"]" * 100_000
    resp = post(client, body)
    assert resp.status_code == 400


def test_an_unknown_event_type_is_a_logged_200_ignored(stripe_app, client):
    body = json.dumps({"id": "evt_new", "type": "customer.created", "data": {"object": {}}})
    resp = post(client, body.encode())
    assert resp.status_code == 200 and resp.json["outcome"] == "ignored"


def test_a_timestamp_more_than_five_minutes_ahead_is_refused(stripe_app, client, merchant):
    payment = stripe_payment(merchant)
    body = intent_event(payment)
    for ahead in (3600, 301 + 30):
        resp = post(client, body, sign(body, timestamp=int(time.time()) + ahead))
        assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_signature"
    assert db.session.get(Payment, payment.id).status == "pending"
    # A clock a little ahead (within the five minutes) is accepted.
    resp = post(client, body, sign(body, timestamp=int(time.time()) + 240))
    assert resp.status_code == 200, resp.json
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).status == "succeeded"
