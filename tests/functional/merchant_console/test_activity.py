"""Find and act in the merchant console (issue 15, item 3): lists with filters, the
timeline, void one or all of a customer's links, refunds within the user's limit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment, Refund
from portal.payments.services import fulfil_payment, start_payment
from portal.support.models import AuditLog
from tests.factories import make_merchant, make_request, statement_body
from tests.functional.merchant_console.helpers import console_user, csrf, sign_in
from tests.functional.support.test_console import https_client


def paid(m, **body):
    pr = make_request(m, statement_body(**body))
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()
    return db.session.get(PaymentRequest, pr.id), db.session.get(Payment, payment.id)


@pytest.fixture
def shop(app):
    m = make_merchant(name="Shop One")
    other = make_merchant(name="Shop Two")
    shop = {
        "m": m,
        "owner": console_user(m.merchant, "owner@one.test"),
        "clerk": console_user(m.merchant, "clerk@one.test", "staff", refund_limit=1000),
        "open": make_request(m, statement_body(reference="OPEN-1", amount=2000,
                                               customer={"name": "Ann", "reference": "CUST-A"})),
        "open2": make_request(m, statement_body(reference="OPEN-2", amount=3000,
                                                customer={"name": "Ann", "reference": "CUST-A"})),
        "other_customer": make_request(m, statement_body(reference="OPEN-3",
                                                         customer={"reference": "CUST-B"})),
        "theirs": make_request(other, statement_body(reference="OPEN-1",
                                                     customer={"reference": "CUST-A"})),
    }  # fmt: skip
    shop["paid"], shop["payment"] = paid(m, reference="PAID-1", amount=12500)
    db.session.commit()
    return shop


def browser(app, user):
    client = https_client(app)
    assert sign_in(client, user).status_code == 303
    return client


def test_lists_with_filters(app, shop):
    client = browser(app, shop["clerk"])

    def refs(path, **query):
        text = client.get(path, query_string=query).text
        return {r for r in ("OPEN-1", "OPEN-2", "OPEN-3", "PAID-1") if r in text}

    assert refs("/merchant/requests") == {"OPEN-1", "OPEN-2", "OPEN-3", "PAID-1"}
    assert refs("/merchant/requests", status="paid") == {"PAID-1"}
    assert refs("/merchant/requests", q="CUST-A") == {"OPEN-1", "OPEN-2"}
    assert refs("/merchant/requests", q="An") == {"OPEN-1", "OPEN-2"}
    assert refs("/merchant/requests", min="25", max="100,00") == {"OPEN-2"}
    assert refs("/merchant/requests", to="2000-01-01") == set()
    assert refs("/merchant/requests", status="nonsense", min="lots") == set()
    assert (
        shop["theirs"].id not in client.get("/merchant/requests", query_string={"q": "OPEN-1"}).text
    )
    payments = client.get("/merchant/payments").text
    assert shop["payment"].receipt_number in payments
    assert shop["payment"].receipt_number not in client.get(
        "/merchant/payments", query_string={"status": "failed"}).text  # fmt: skip


def test_the_timeline(app, shop):
    client = browser(app, shop["clerk"])
    page = client.get(f"/merchant/requests/{shop['paid'].id}").text
    for step in ("Created", "Payment attempt", "Paid"):
        assert step in page


def test_void_one_and_all_of_a_customers_links(app, shop):
    client = browser(app, shop["clerk"])
    token = csrf(client, "/merchant/requests")
    pr = shop["other_customer"]
    resp = client.post(f"/merchant/requests/{pr.id}/void", data={"csrf_token": token,
                                                                 "reason": "asked"})  # fmt: skip
    assert resp.status_code == 303
    db.session.refresh(pr)
    assert pr.status == "void"
    # a paid request cannot be voided: the page says so, nothing changes
    resp = client.post(f"/merchant/requests/{shop['paid'].id}/void", data={"csrf_token": token})
    assert resp.status_code == 409
    resp = client.post("/merchant/customers/void", data={"csrf_token": token,
                                                         "customer_reference": "CUST-A",
                                                         "reason": "lost phone"})  # fmt: skip
    assert resp.status_code == 303 and "voided=2" in resp.headers["Location"]
    statuses = {p.reference: p.status for p in db.session.scalars(select(PaymentRequest))
                if p.merchant_id == shop["m"].id}  # fmt: skip
    assert statuses == {"OPEN-1": "void", "OPEN-2": "void", "OPEN-3": "void", "PAID-1": "paid"}
    db.session.refresh(shop["theirs"])
    assert shop["theirs"].status == "open"  # the other shop's customer CUST-A is not ours
    actions = db.session.scalars(select(AuditLog.action).where(
        AuditLog.staff_id == shop["clerk"].id)).all()  # fmt: skip
    assert {"merchant.request.voided", "merchant.customer.voided"} <= set(actions)


def test_refunds_within_the_limit(app, shop):
    payment = shop["payment"]
    clerk = browser(app, shop["clerk"])
    token = csrf(clerk, "/merchant/requests")
    path = f"/merchant/payments/{payment.id}/refunds"
    ok = clerk.post(path, data={"csrf_token": token, "amount": "5,00", "reason": "stale bread"})
    assert ok.status_code == 303
    for data in ({"amount": "20"}, {"amount": ""}, {"amount": "cinq"}):  # over 10.00, or all
        resp = clerk.post(path, data={"csrf_token": token, "reason": "x", **data})
        assert resp.status_code == 422, data
    owner = browser(app, shop["owner"])
    token = csrf(owner, "/merchant/requests")
    over = owner.post(path, data={"csrf_token": token, "amount": "200", "reason": "x"})
    assert over.status_code == 422
    assert owner.post(path, data={"csrf_token": token, "reason": "closing"}).status_code == 303
    refunds = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
    assert sorted((r.amount, r.reason) for r in refunds) == [(500, "stale bread"),
                                                             (12000, "closing")]  # fmt: skip
    db.session.refresh(payment)
    assert payment.status == "refunded"
    audit = db.session.scalars(select(AuditLog).where(
        AuditLog.action == "merchant.payment.refunded")).all()  # fmt: skip
    assert sorted(a.staff_email for a in audit) == ["clerk@one.test", "owner@one.test"]
