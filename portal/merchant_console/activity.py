"""Find and act: the merchant's requests and payments with filters, a request's timeline,
void (one request, or all of a customer's), refunds within the user's limit.

Every action goes through the service the API uses and writes its audit entry in the
same transaction; services add and flush, the request commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_, select

from portal.delivery.models import LinkDelivery
from portal.errors import Invalid, NotFound
from portal.extensions import db
from portal.merchant_console.accounts import audit
from portal.merchant_console.models import MerchantUser
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import void_customer_requests, void_request
from portal.payments.models import Payment, Refund
from portal.payments.refunds import refund_payment
from portal.reminders.services import reminders_for

PAGE = 100


@dataclass
class Filters:
    status: str = ""
    text: str = ""
    date_from: date | None = None
    date_to: date | None = None
    amount_min: int | None = None
    amount_max: int | None = None


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_requests(user: MerchantUser, f: Filters) -> list[PaymentRequest]:
    """The merchant's requests, newest first: by status, creation date, customer
    (reference, e-mail, start of the name), the merchant's reference, amount."""
    query = select(PaymentRequest).where(PaymentRequest.merchant_id == user.merchant_id)
    if f.status:
        query = query.where(PaymentRequest.status == f.status)
    text = f.text.strip()
    if text:
        query = query.where(
            or_(
                PaymentRequest.id == text,
                PaymentRequest.reference == text,
                PaymentRequest.customer_reference == text,
                PaymentRequest.order_reference == text,
                PaymentRequest.customer_email == text.lower(),
                PaymentRequest.customer_name.like(f"{_escape(text)}%", escape="\\"),
            )
        )
    if f.date_from:
        query = query.where(PaymentRequest.created_at >= _start(f.date_from))
    if f.date_to:
        query = query.where(PaymentRequest.created_at < _start(f.date_to + timedelta(days=1)))
    if f.amount_min is not None:
        query = query.where(PaymentRequest.amount >= f.amount_min)
    if f.amount_max is not None:
        query = query.where(PaymentRequest.amount <= f.amount_max)
    order = (PaymentRequest.created_at.desc(), PaymentRequest.id.desc())
    return list(db.session.scalars(query.order_by(*order).limit(PAGE)))


def find_payments(user: MerchantUser, f: Filters) -> list[Payment]:
    query = select(Payment).where(Payment.merchant_id == user.merchant_id)
    if f.status:
        query = query.where(Payment.status == f.status)
    if f.text.strip():
        ids = select(PaymentRequest.id).where(
            PaymentRequest.merchant_id == user.merchant_id,
            or_(
                PaymentRequest.reference == f.text.strip(),
                PaymentRequest.customer_reference == f.text.strip(),
            ),
        )
        query = query.where(or_(Payment.id == f.text.strip(), Payment.request_id.in_(ids)))
    if f.date_from:
        query = query.where(Payment.created_at >= _start(f.date_from))
    if f.date_to:
        query = query.where(Payment.created_at < _start(f.date_to + timedelta(days=1)))
    if f.amount_min is not None:
        query = query.where(Payment.amount >= f.amount_min)
    if f.amount_max is not None:
        query = query.where(Payment.amount <= f.amount_max)
    order = (Payment.created_at.desc(), Payment.id.desc())
    return list(db.session.scalars(query.order_by(*order).limit(PAGE)))


@dataclass
class Entry:
    at: datetime | None
    kind: str
    detail: str = ""
    amount: int | None = None


def timeline(pr: PaymentRequest) -> list[Entry]:
    """What happened to the request, oldest first."""
    entries = [Entry(pr.created_at, "created")]
    for d in db.session.scalars(select(LinkDelivery).where(LinkDelivery.request_id == pr.id)):
        entries.append(Entry(d.sent_at or d.created_at, f"sent_{d.status}",
                             f"{d.channel} {d.destination}"))  # fmt: skip
    for rem in reminders_for(pr.id):
        why = f" ({rem.reason})" if rem.reason else ""
        entries.append(
            Entry(rem.done_at or rem.due_at, "reminder", f"{rem.key} · {rem.status}{why}")
        )
    if pr.first_opened_at:
        entries.append(Entry(pr.first_opened_at, "opened", str(pr.open_count)))
    for p in payments_of(pr):
        entries.append(Entry(p.created_at, "payment", f"{p.id} {p.status}", p.amount))
        if p.succeeded_at:
            entries.append(Entry(p.succeeded_at, "succeeded", p.receipt_number or p.id, p.amount))
        for r in db.session.scalars(select(Refund).where(Refund.payment_id == p.id)):
            entries.append(Entry(r.created_at, "refund", r.reason or "", r.amount))
    if pr.voided_at:
        entries.append(Entry(pr.voided_at, "voided"))
    if pr.renewal_requested_at:  # the last "ask for a new link" passed on
        entries.append(Entry(pr.renewal_requested_at, "renewal"))
    entries.sort(key=lambda e: (e.at is None, e.at))
    return entries


def payments_of(pr: PaymentRequest) -> list[Payment]:
    return list(
        db.session.scalars(
            select(Payment).where(Payment.request_id == pr.id).order_by(Payment.created_at)
        )
    )


def void_one(user: MerchantUser, request_id: str, reason: str) -> PaymentRequest:
    pr = void_request(user.merchant, request_id, reason or None)
    audit(user, "request.voided", pr.id, reason, request_id=pr.id)
    return pr


def void_customer(user: MerchantUser, customer_reference: str, reason: str) -> list[str]:
    """Every open request of the customer; an empty reference is refused."""
    customer_reference = customer_reference.strip()
    if not customer_reference:
        raise Invalid("missing_field", "The customer reference is needed.", "customer_reference")
    ids = void_customer_requests(user.merchant, customer_reference)
    audit(user, "customer.voided", customer_reference[:60], reason, ids=ids)
    return ids


def payment_of(user: MerchantUser, payment_id: str) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.merchant_id != user.merchant_id:
        raise NotFound("payment")
    return payment


def refund(user: MerchantUser, payment_id: str, amount: int | None, reason: str) -> Refund:
    """All that remains (``amount`` None) or part of it; staff up to their limit."""
    payment = payment_of(user, payment_id)
    wanted = payment.amount - payment.amount_refunded if amount is None else amount
    if not user.is_owner and wanted > user.refund_limit:
        raise Invalid("refund_over_limit", "This refund is over your limit.", "amount")
    made = refund_payment(user.merchant, payment.id, amount, reason or None)
    audit(user, "payment.refunded", payment.id, reason, request_id=payment.request_id,
          refund_id=made.id, amount=made.amount)  # fmt: skip
    return made
