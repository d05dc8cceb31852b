"""The pay flow's rules and THE fulfilment function, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.worker import run_due_jobs
from portal.ledger.models import Event
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.payments.services import (
    PaymentRefused,
    apply_provider_payment,
    decide_amount,
    fulfil_payment,
    start_payment,
)
from portal.providers.base import ProviderPayment
from tests.factories import deposit_body, make_merchant, make_request, statement_body, wallet_body


def ok(payment: Payment, **kw) -> ProviderPayment:
    return ProviderPayment(
        status=kw.pop("status", "succeeded"),
        amount=kw.pop("amount", payment.amount),
        currency=kw.pop("currency", payment.currency),
        **kw,
    )


def events(pr_id: str) -> list[str]:
    return [
        e.type
        for e in db.session.scalars(
            select(Event).where(Event.request_id == pr_id).order_by(Event.seq)
        )
    ]


def test_statement_pays_the_amount_due_from_the_database(app, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None, locale="nl")
    assert payment.amount == 12500 and payment.currency == "EUR"
    assert payment.status == "pending"
    assert payment.receipt_email == "jan@example.com"
    with pytest.raises(PaymentRefused) as err:
        start_payment(pr, 100)  # partial payments not allowed here
    assert err.value.code == "amount_fixed"


def test_double_submit_reuses_the_open_attempt(app, merchant):
    pr = make_request(merchant)
    first = start_payment(pr, None)
    second = start_payment(pr, None, receipt_email="other@example.com")
    assert first.id == second.id
    assert db.session.scalar(select(func.count(Payment.id))) == 1


def test_partial_statement_bounds(app, merchant):
    pr = make_request(merchant, statement_body(allow_partial=True))
    assert decide_amount(pr, 100) == 100
    assert decide_amount(pr, 12500) == 12500
    with pytest.raises(PaymentRefused) as err:
        decide_amount(pr, 12501)
    assert err.value.code == "amount_above_maximum"
    with pytest.raises(PaymentRefused):
        decide_amount(pr, 0)
    # a new amount cancels the unpaid attempt of another amount
    a = start_payment(pr, 5000)
    b = start_payment(pr, 6000)
    db.session.expire_all()
    assert db.session.get(Payment, a.id).status == "canceled"
    assert db.session.get(Payment, b.id).status == "pending"


def test_wallet_bounds_and_ceiling(app):
    m = make_merchant(ceiling="300.00")
    pr = make_request(m, wallet_body(wallet={"min_amount": 500, "max_amount": 30000}))
    assert decide_amount(pr, 500) == 500
    with pytest.raises(PaymentRefused) as err:
        decide_amount(pr, 499)
    assert err.value.code == "amount_below_minimum"
    with pytest.raises(PaymentRefused) as err:
        decide_amount(pr, 30001)
    assert err.value.code == "amount_above_maximum"
    with pytest.raises(PaymentRefused) as err:
        decide_amount(pr, None)
    assert err.value.code == "amount_required"


def test_deposit_or_whole_order(app, merchant):
    pr = make_request(merchant, deposit_body(allow_full_payment=True))
    assert decide_amount(pr, None) == 3000
    assert decide_amount(pr, None, full_order=True) == 10000


def test_fulfil_marks_paid_with_events_and_one_receipt_job(app, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None)
    assert fulfil_payment(payment.id, ok(payment, card_brand="visa", card_last4="4242")) is True
    db.session.commit()
    assert fulfil_payment(payment.id, ok(payment)) is False  # a duplicate does nothing
    db.session.commit()
    db.session.expire_all()
    pr = db.session.get(PaymentRequest, pr.id)
    payment = db.session.get(Payment, payment.id)
    assert pr.status == "paid" and pr.amount_paid == 12500 and pr.paid_at is not None
    assert payment.status == "succeeded" and payment.receipt_number.startswith("R")
    assert payment.card_last4 == "4242"
    assert events(pr.id) == ["payment.succeeded", "payment_request.paid"]
    jobs = db.session.scalars(select(Job).where(Job.kind == "send_receipt")).all()
    assert [j.payload for j in jobs] == [{"payment_id": payment.id}]
    with pytest.raises(PaymentRefused) as err:
        start_payment(pr, None)
    assert err.value.code == "not_payable"


def test_partial_payment_then_the_rest(app, merchant):
    pr = make_request(merchant, statement_body(allow_partial=True))
    first = start_payment(pr, 5000)
    fulfil_payment(first.id)
    db.session.commit()
    db.session.expire_all()
    pr = db.session.get(PaymentRequest, pr.id)
    assert pr.status == "partially_paid" and pr.amount_due == 7500
    second = start_payment(pr, None)
    assert second.amount == 7500
    fulfil_payment(second.id)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(PaymentRequest, pr.id).status == "paid"
    assert events(pr.id) == ["payment.succeeded", "payment.succeeded", "payment_request.paid"]


def test_amount_mismatch_is_flagged_not_fulfilled(app, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None)
    apply_provider_payment(payment.id, ok(payment, amount=100), source="test")
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "pending" and payment.flagged
    assert "100 EUR" in payment.flagged_reason
    apply_provider_payment(payment.id, ok(payment, currency="usd"), source="test")
    assert db.session.get(PaymentRequest, pr.id).status == "open"
    assert events(pr.id) == []


def test_failure_then_late_events_never_go_backwards(app, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None)
    apply_provider_payment(
        payment.id, ok(payment, status="failed", failure_code="card_declined"), source="test"
    )
    apply_provider_payment(payment.id, ok(payment, status="processing"), source="test")
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "failed" and payment.failure_code == "card_declined"
    assert events(pr.id) == ["payment.failed"]
    # the customer retries with a new attempt...
    retry = start_payment(db.session.get(PaymentRequest, pr.id), None)
    assert retry.id != payment.id
    # ...while the failed one is paid after all in a stale tab: the money counts (it fits),
    # and the retry, which no longer fits, is closed
    assert apply_provider_payment(payment.id, ok(payment), source="test") == "applied"
    db.session.expire_all()
    assert db.session.get(PaymentRequest, pr.id).status == "paid"
    retry = db.session.get(Payment, retry.id)
    assert retry.status == "canceled" and retry.failure_code == "superseded"
    # should the retry's money still arrive, it is given back, never kept in a flag
    assert apply_provider_payment(retry.id, ok(retry), source="test") == "refund_due"
    apply_provider_payment(retry.id, ok(retry, status="processing"), source="test")
    db.session.expire_all()
    retry = db.session.get(Payment, retry.id)
    assert retry.status == "succeeded" and not retry.applied and not retry.flagged
    assert retry.refund_due == "request_closed"
    assert db.session.get(PaymentRequest, pr.id).amount_paid == 12500
    assert events(pr.id) == ["payment.failed", "payment.succeeded", "payment_request.paid"]


def test_money_for_a_voided_request_is_refunded_automatically(app, merchant, smtp):
    pr = make_request(merchant)
    payment = start_payment(pr, None)
    pr = db.session.get(PaymentRequest, pr.id)
    pr.status = "void"
    db.session.commit()
    assert fulfil_payment(payment.id) is False
    db.session.commit()
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "succeeded" and not payment.applied and not payment.flagged
    assert payment.refund_due == "request_closed"
    run_due_jobs()
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.status == "refunded" and payment.amount_refunded == 12500
    assert payment.refund_due is None
    refund = payment.refunds[0]
    assert refund.source == "automatic" and refund.reason == "request_closed"
    pr = db.session.get(PaymentRequest, pr.id)
    assert pr.status == "void" and pr.amount_paid == 0 and pr.amount_refunded == 0
    refunded = db.session.scalars(select(Event).where(Event.request_id == pr.id)).all()
    assert [e.type for e in refunded] == ["payment.refunded"]
    data = refunded[0].data
    assert data["payment"]["applied"] is False and data["refund"]["source"] == "automatic"
    assert data["allocation"] == []
    (mail,) = smtp.messages
    assert "refunded" in mail["Subject"] or "terugbetaald" in mail["Subject"]


def _parallel(app, count, target):
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run():
        with app.app_context():
            barrier.wait()
            try:
                results.append(target())
            except Exception as exc:  # collected and asserted below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_twenty_concurrent_fulfilments_fulfil_once(pg_app):
    m = make_merchant()
    pr = make_request(m)
    payment = start_payment(pr, None)
    db.session.commit()
    pid, pr_id = payment.id, pr.id

    def settle() -> bool:
        done = fulfil_payment(pid)
        db.session.commit()
        return done

    results, errors = _parallel(pg_app, 20, settle)
    assert errors == []
    assert sorted(results) == [False] * 19 + [True]
    db.session.expire_all()
    assert db.session.get(PaymentRequest, pr_id).amount_paid == 12500
    assert events(pr_id) == ["payment.succeeded", "payment_request.paid"]
    assert db.session.scalar(select(func.count(Job.id)).where(Job.kind == "send_receipt")) == 1


def test_concurrent_pay_clicks_make_one_payment(pg_app):
    m = make_merchant()
    pr = make_request(m)
    pr_id = pr.id

    def click() -> str:
        payment_id = start_payment(db.session.get(PaymentRequest, pr_id), None).id
        db.session.commit()
        return payment_id

    results, errors = _parallel(pg_app, 8, click)
    assert errors == []
    assert len(set(results)) == 1
    assert db.session.scalar(select(func.count(Payment.id))) == 1
