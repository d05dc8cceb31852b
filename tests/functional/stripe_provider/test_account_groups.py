"""The account page's one payment for several requests, through Stripe: one PaymentIntent
for the group (localstripe over HTTP, the real SDK), its signed webhooks applied to every
member at once, member refunds as partial refunds of that intent."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
from sqlalchemy import select, update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.periodic import reconcile_payments
from portal.ledger.models import Event
from portal.links import account_token
from portal.payment_requests.models import PaymentRequest
from portal.payments.groups import Selection, start_group
from portal.payments.models import Payment, PaymentGroup, Refund
from portal.providers.base import get_provider
from tests.factories import deposit_body, make_request, statement_body
from tests.functional.stripe_provider.conftest import WEBHOOK_SECRET, sign, wait_for
from tests.servers import HTTPRecorder, json_response

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CONFIG = re.compile(r'<script id="stripe-config" type="application/json">(.*?)</script>', re.S)
REF = "C-9"


def customer(reference: str = REF):
    return {"name": "Jan Peeters", "email": "jan@example.com", "reference": reference}


def setup_account(m):
    lines = [
        {"date": "2026-10-03", "description": "Bread", "amount": 3000, "reference": "L1"},
        {"date": "2026-10-20", "description": "Wine", "amount": 4500, "reference": "L2"},
    ]
    st = make_request(m, statement_body(
        amount=7500, allow_partial=True, customer=customer(),
        statement={"balance": 7500, "lines": lines},
    ))  # fmt: skip
    dep = make_request(m, deposit_body(amount=5000, customer=customer()))
    return st, dep


def start_by_page(client, m, st, dep):
    """The customer ticks the statement's first line and the deposit, and pays."""
    url = f"/a/{account_token(m.id, REF)}"
    answer = client.get(url, query_string={"lang": "en"})
    data = {"csrf_token": CSRF.search(answer.text).group(1),
            "line": str(st.statement_lines[0].id), "request": dep.id}  # fmt: skip
    started = client.post(f"{url}/pay", data=data)
    assert started.status_code == 303, started.text
    group = db.session.scalars(select(PaymentGroup)).one()
    return url, started.headers["Location"], group


def api(stripe_portal, path, **params):
    base = stripe_portal.config["PORTAL_STRIPE_API_BASE"]
    answer = requests.get(f"{base}{path}", params=params, auth=("sk_test_portal", ""), timeout=5)
    return answer.json()


def card(stripe_portal, number: str) -> str:
    pm = requests.post(
        f"{stripe_portal.config['PORTAL_STRIPE_API_BASE']}/v1/payment_methods",
        auth=("sk_test_portal", ""),
        data={"type": "card", "card[number]": number, "card[exp_month]": "12",
              "card[exp_year]": "2039", "card[cvc]": "123"},
        timeout=5,
    ).json()  # fmt: skip
    return pm["id"]


def post_event(client, event: dict) -> dict:
    body = json.dumps(event).encode()
    answer = client.post(
        "/webhooks/stripe", data=body, content_type="application/json",
        headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json


def events_of(request_id: str) -> list[str]:
    return list(db.session.scalars(select(Event.type).where(Event.request_id == request_id)))


def test_a_line_and_a_deposit_paid_in_one_intent(stripe_portal, client, merchant):
    st, dep = setup_account(merchant)
    url, checkout, group = start_by_page(client, merchant, st, dep)
    db.session.expire_all()
    group = db.session.get(PaymentGroup, group.id)
    assert group.provider == "stripe" and group.provider_payment_id.startswith("pi_")
    intent = api(stripe_portal, f"/v1/payment_intents/{group.provider_payment_id}")
    assert intent["amount"] == 8000 and intent["currency"] == "eur"  # from the database
    assert intent["metadata"] == {"payment_group_id": group.id, "merchant_id": merchant.id}
    # The Payment Element's page: the intent's secret, the way back under /a/.
    page = client.get(checkout)
    assert page.status_code == 200 and "€80.00" in page.text
    config = json.loads(CONFIG.search(page.text).group(1))
    assert config["clientSecret"] == intent["client_secret"]
    assert config["returnUrl"].endswith(f"{url}/return/{group.id}")
    assert f'href="{url}"' in page.text  # back to the account page, not a payment link
    # A second click reuses the attempt and its intent.
    again = client.get(checkout)
    assert json.loads(CONFIG.search(again.text).group(1))["clientSecret"] == config["clientSecret"]
    # The browser confirms with Stripe; localstripe then sends the signed webhook.
    state = get_provider("stripe").confirm(group, "pm_card_visa")
    assert state.status == "succeeded" and state.amount == 8000
    assert wait_for(lambda: db.session.get(PaymentGroup, group.id).status == "succeeded"), (
        "localstripe's webhook never settled the group"
    )
    group = db.session.get(PaymentGroup, group.id)
    members = {m.request_id: m for m in group.members}
    assert members[st.id].amount == 3000 and members[dep.id].amount == 5000
    assert all(m.status == "succeeded" and m.applied for m in members.values())
    st_now, dep_now = db.session.get(PaymentRequest, st.id), db.session.get(PaymentRequest, dep.id)
    assert st_now.status == "partially_paid"
    assert [ln.amount_settled for ln in st_now.statement_lines] == [3000, 0]
    assert dep_now.status == "paid"
    assert events_of(st.id) == ["payment.succeeded"]
    assert events_of(dep.id) == ["payment.succeeded", "payment_request.paid"]
    assert db.session.scalars(select(Job).where(Job.kind == "send_group_receipt")).one()
    # The return page asks Stripe and changes nothing more.
    result = client.get(f"{url}/return/{group.id}", query_string={"lang": "en"})
    assert result.status_code == 200 and "Payment received" in result.text
    # Duplicates: the same delivery again, and the event under another id, settle nothing.
    [delivered] = api(stripe_portal, "/v1/events", type="payment_intent.succeeded")["data"]
    assert post_event(client, delivered)["duplicate"] is True
    replay = post_event(client, {**delivered, "id": "evt_replayed"})
    assert replay["outcome"] == "succeeded: already settled"
    db.session.expire_all()
    assert events_of(st.id) == ["payment.succeeded"]
    assert events_of(dep.id) == ["payment.succeeded", "payment_request.paid"]
    assert db.session.get(PaymentRequest, st.id).amount_paid == 3000
    assert db.session.get(PaymentRequest, dep.id).amount_paid == 5000
    assert len(db.session.scalars(select(Job).where(Job.kind == "send_group_receipt")).all()) == 1

    # A member refund is a partial refund of the group's intent, capped at the member.
    refunds_url = f"/api/v1/payments/{members[dep.id].id}/refunds"
    too_much = client.post(refunds_url, json={"amount": 5001}, headers=merchant.headers)
    assert too_much.status_code == 422
    assert too_much.json["error"]["code"] == "amount_exceeds_refundable"
    part = client.post(refunds_url, json={"amount": 2000}, headers=merchant.headers)
    assert part.status_code == 201, part.json
    at_stripe = api(stripe_portal, "/v1/refunds")["data"]
    assert [(r["amount"], r["payment_intent"]) for r in at_stripe] == [
        (2000, group.provider_payment_id)
    ]
    db.session.expire_all()
    refunded = db.session.get(Payment, members[dep.id].id)
    assert refunded.amount_refunded == 2000 and refunded.status == "partially_refunded"
    assert db.session.get(Payment, members[st.id].id).amount_refunded == 0
    assert events_of(dep.id)[-1] == "payment.refunded"
    # Stripe's charge.refunded for our own refund books nothing more.
    charge = {"id": "ch_group", "object": "charge", "amount_refunded": 2000,
              "payment_intent": group.provider_payment_id}  # fmt: skip
    event = {"id": "evt_refunded_1", "object": "event", "type": "charge.refunded",
             "data": {"object": charge}}  # fmt: skip
    assert post_event(client, event)["outcome"] == "refunds recorded"
    db.session.expire_all()
    assert len(db.session.scalars(select(Refund)).all()) == 1


def test_a_failed_card_leaves_everything_open(stripe_portal, client, merchant):
    st, dep = setup_account(merchant)
    url, _checkout, group = start_by_page(client, merchant, st, dep)
    db.session.expire_all()
    group = db.session.get(PaymentGroup, group.id)
    state = get_provider("stripe").confirm(group, card(stripe_portal, "4000000000000341"))
    assert state.status == "failed" and state.failure_code
    # The return page asks Stripe (declined: the intent wants another method); the webhook
    # says the same, whichever comes first.
    result = client.get(f"{url}/return/{group.id}", query_string={"lang": "en"})
    assert result.status_code == 200
    assert wait_for(lambda: db.session.get(PaymentGroup, group.id).status == "failed")
    group = db.session.get(PaymentGroup, group.id)
    assert {m.status for m in group.members} == {"failed"}
    for pr_id in (st.id, dep.id):
        pr = db.session.get(PaymentRequest, pr_id)
        assert pr.status == "open" and pr.amount_paid == 0
        assert "payment.succeeded" not in events_of(pr_id)
    assert db.session.scalars(select(Refund)).first() is None
    # The account page offers both again.
    again = client.get(url, query_string={"lang": "en"})
    assert f'name="request" value="{dep.id}"' in again.text


def test_a_lost_webhook_is_reconciled(stripe_portal, client, merchant):
    stripe_portal.config["PORTAL_STRIPE_WEBHOOK_SECRET"] = "whsec_other"  # deliveries refused
    st, dep = setup_account(merchant)
    _url, _checkout, group = start_by_page(client, merchant, st, dep)
    db.session.expire_all()
    group = db.session.get(PaymentGroup, group.id)
    assert get_provider("stripe").confirm(group, "pm_card_visa").status == "succeeded"
    db.session.execute(
        update(PaymentGroup)
        .where(PaymentGroup.id == group.id)
        .values(updated_at=utcnow() - timedelta(minutes=20))
    )
    db.session.commit()
    reconcile_payments()
    db.session.expire_all()
    assert db.session.get(PaymentGroup, group.id).status == "succeeded"
    assert db.session.get(PaymentRequest, dep.id).status == "paid"
    assert events_of(st.id) == ["payment.succeeded"]


@pytest.fixture
def group_app(app):
    app.config.update(PORTAL_PAYMENT_PROVIDER="stripe", PORTAL_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    return app


def sandbox_group(app, m, pi: str = "pi_group_1") -> PaymentGroup:
    """A Stripe group without localstripe: its intent id set by hand."""
    st, dep = setup_account(m)
    app.config["PORTAL_PAYMENT_PROVIDER"] = "sandbox"
    group = start_group(m.merchant, REF, Selection(requests=frozenset({st.id, dep.id})))
    group.provider = "stripe"
    group.provider_payment_id = pi
    for member in group.members:
        member.provider = "stripe"
    db.session.commit()
    app.config["PORTAL_PAYMENT_PROVIDER"] = "stripe"
    return group


def group_event(group, kind="payment_intent.succeeded", event_id="evt_g1", **changes):
    status = {"payment_intent.succeeded": "succeeded", "payment_intent.processing": "processing",
              "payment_intent.payment_failed": "requires_payment_method",
              "payment_intent.canceled": "canceled"}[kind]  # fmt: skip
    intent = {
        "id": group.provider_payment_id, "object": "payment_intent", "amount": group.amount,
        "currency": "eur", "status": status, "metadata": {"payment_group_id": group.id},
        "latest_charge": {"id": "ch_g", "payment_method_details": {
            "type": "card", "card": {"brand": "visa", "last4": "4242"}}},
        "last_payment_error": {"code": "card_declined", "message": "Declined"}
        if kind == "payment_intent.payment_failed" else None,
    }  # fmt: skip
    account = changes.pop("account", None)
    intent.update(changes)
    event = {"id": event_id, "object": "event", "type": kind, "data": {"object": intent}}
    if account:
        event["account"] = account
    return event


def test_group_events_in_any_order_never_go_backwards(group_app, client, merchant):
    group = sandbox_group(group_app, merchant)
    processing = post_event(client, group_event(group, "payment_intent.processing", "evt_p"))
    assert processing["outcome"] == "processing: processing"
    db.session.expire_all()
    assert {m.status for m in db.session.get(PaymentGroup, group.id).members} == {"processing"}
    assert post_event(client, group_event(group, event_id="evt_s"))["outcome"] == (
        "succeeded: succeeded"
    )
    late_failure = post_event(client, group_event(group, "payment_intent.payment_failed", "evt_f"))
    assert late_failure["outcome"] == "failed: failed"
    canceled = post_event(client, group_event(group, "payment_intent.canceled", "evt_c"))
    assert canceled["outcome"] == "canceled: canceled"
    db.session.expire_all()
    group = db.session.get(PaymentGroup, group.id)
    assert group.status == "succeeded" and group.card_last4 == "4242"
    assert {m.status for m in group.members} == {"succeeded"}


@pytest.mark.parametrize(
    "changes",
    [{"amount": 100}, {"currency": "usd"}, {"metadata": {"payment_group_id": "pg_other"}},
     {"account": "acct_intruder"}],
)  # fmt: skip
def test_group_mismatches_are_flagged_and_settle_nothing(group_app, client, merchant, changes):
    group = sandbox_group(group_app, merchant)
    answer = post_event(client, group_event(group, **changes))
    assert "flagged" in answer["outcome"]
    db.session.expire_all()
    group = db.session.get(PaymentGroup, group.id)
    assert group.status == "pending" and group.flagged_reason
    assert all(m.flagged and m.status == "pending" for m in group.members)
    assert (
        db.session.scalars(select(Event).where(Event.type == "payment.succeeded")).first() is None
    )


def test_dashboard_refunds_of_a_group(group_app, client, merchant):
    group = sandbox_group(group_app, merchant)
    post_event(client, group_event(group))

    def refunded(total, event_id):
        charge = {"id": "ch_g", "object": "charge", "amount_refunded": total,
                  "payment_intent": group.provider_payment_id}  # fmt: skip
        event = {"id": event_id, "object": "event", "type": "charge.refunded",
                 "data": {"object": charge}}  # fmt: skip
        return post_event(client, event)["outcome"]

    # Part of the group, in the dashboard: whose share is unknown, support decides.
    assert refunded(1000, "evt_r1") == "group flagged"
    db.session.expire_all()
    flagged = db.session.get(PaymentGroup, group.id).members
    assert all(m.flagged and m.amount_refunded == 0 for m in flagged)
    # All of it: every member refunded in full.
    assert refunded(group.amount, "evt_r2") == "refunds recorded"
    db.session.expire_all()
    members = db.session.get(PaymentGroup, group.id).members
    assert all(m.status == "refunded" and m.amount_refunded == m.amount for m in members)
    assert refunded(group.amount, "evt_r3") == "refunds recorded"
    assert len(db.session.scalars(select(Refund)).all()) == len(members)
    nobody = {"id": "ch_x", "payment_intent": "pi_nobody", "amount_refunded": 1}
    other = {"id": "evt_r4", "object": "event", "type": "charge.refunded",
             "data": {"object": nobody}}  # fmt: skip
    assert post_event(client, other)["outcome"] == "unknown charge"
    no_intent = {**other, "id": "evt_r5", "data": {"object": {"id": "ch_y", "amount_refunded": 1}}}
    assert post_event(client, no_intent)["outcome"] == "unknown charge"
    dispute = {"id": "dp_1", "object": "dispute", "charge": "ch_g", "reason": "fraudulent",
               "payment_intent": group.provider_payment_id}  # fmt: skip
    disputed = {"id": "evt_d", "object": "event", "type": "charge.dispute.created",
                "data": {"object": dispute}}  # fmt: skip
    assert post_event(client, disputed)["outcome"] == "dispute flagged"
    db.session.expire_all()
    assert "fraudulent" in db.session.get(PaymentGroup, group.id).flagged_reason
    nobody_dispute = {**disputed, "id": "evt_d2",
                      "data": {"object": {**dispute, "payment_intent": "pi_nobody"}}}  # fmt: skip
    assert post_event(client, nobody_dispute)["outcome"] == "unknown charge"
    unknown = group_event(group, event_id="evt_u", id="pi_nobody")
    assert post_event(client, unknown)["outcome"] == "unknown payment intent"


def test_group_intent_production_parameters(app, client):
    """automatic_payment_methods, the Idempotency-Key and the connected account's header
    for the group's intent, recorded (localstripe ignores them)."""
    from tests.factories import make_merchant

    m = make_merchant()
    intent = {
        "id": "pi_recorded_group", "object": "payment_intent", "amount": 8000, "currency": "eur",
        "status": "requires_payment_method", "client_secret": "pi_recorded_group_secret_x",
        "metadata": {},
    }  # fmt: skip
    recorder = HTTPRecorder(lambda req: json_response(200, intent)).start()
    try:
        app.config.update(
            PORTAL_PAYMENT_PROVIDER="stripe", PORTAL_STRIPE_SECRET_KEY="sk_live_like",
            PORTAL_STRIPE_API_BASE=recorder.url, PORTAL_STRIPE_PAYMENT_METHOD_TYPES=[],
        )  # fmt: skip
        m.merchant.stripe_account = "acct_connected_1"
        db.session.commit()
        st, dep = setup_account(m)
        group = start_group(m.merchant, REF, Selection(requests=frozenset({st.id, dep.id})))
        db.session.commit()
        assert group.provider_payment_id == "pi_recorded_group"
        [create] = recorder.requests
        form = parse_qs(create.body.decode())
        assert form["amount"] == ["12500"] and form["currency"] == ["eur"]
        assert form["automatic_payment_methods[enabled]"] == ["true"]
        assert form["metadata[payment_group_id]"] == [group.id]
        assert form["metadata[merchant_id]"] == [m.id]
        assert create.headers["Idempotency-Key"] == f"portal-pi-{group.id}"
        assert create.headers["Stripe-Account"] == "acct_connected_1"
    finally:
        recorder.stop()


def test_concurrent_group_deliveries_settle_once(pg_app):
    """Ten deliveries at once (PostgreSQL), half under one event id, half each under its
    own: each request settled once, one receipt for the group."""
    from tests.factories import make_merchant
    from tests.functional.stripe_provider.test_webhooks import _threads

    pg_app.config.update(PORTAL_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    m = make_merchant()
    group = sandbox_group(pg_app, m)
    bodies = [group_event(group, event_id="evt_same" if i % 2 else f"evt_{i}") for i in range(10)]
    statuses = []

    def deliver(i):
        body = json.dumps(bodies[i]).encode()
        answer = pg_app.test_client().post(
            "/webhooks/stripe", data=body, content_type="application/json",
            headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)},
        )  # fmt: skip
        statuses.append(answer.status_code)

    assert _threads(10, deliver) == []
    assert statuses == [200] * 10
    db.session.expire_all()
    for member in db.session.get(PaymentGroup, group.id).members:
        assert events_of(member.request_id).count("payment.succeeded") == 1
        assert member.status == "succeeded" and member.applied
    assert len(db.session.scalars(select(Job).where(Job.kind == "send_group_receipt")).all()) == 1


def test_stripe_unreachable_leaves_groups_open(group_app, client, merchant):
    """The return page says "being processed", the checkout page "try again" (503), the
    reconciliation waits for its next run: nothing settles, nothing breaks."""
    from tests.servers import free_port

    group_app.config["PORTAL_STRIPE_API_BASE"] = f"http://127.0.0.1:{free_port()}"
    group = sandbox_group(group_app, merchant)
    url = f"/a/{account_token(merchant.id, REF)}"
    result = client.get(f"{url}/return/{group.id}", query_string={"lang": "en"})
    assert result.status_code == 200
    checkout = client.get(f"{url}/checkout/{group.id}", query_string={"lang": "en"})
    assert checkout.status_code == 503
    db.session.execute(
        update(PaymentGroup)
        .where(PaymentGroup.id == group.id)
        .values(updated_at=utcnow() - timedelta(minutes=20))
    )
    db.session.commit()
    reconcile_payments()
    db.session.expire_all()
    group = db.session.get(PaymentGroup, group.id)
    assert group.status == "pending" and group.updated_at > utcnow() - timedelta(minutes=5)
    assert {m.status for m in group.members} == {"pending"}
