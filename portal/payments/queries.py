"""The merchant's payments and refunds as the API lists them (reads only)."""

from __future__ import annotations

from sqlalchemy import select

from portal.errors import NotFound
from portal.extensions import db
from portal.merchants.models import Merchant
from portal.pagination import newest_first
from portal.payments.models import Payment, Refund


def get_payment(merchant: Merchant, payment_id: str) -> Payment:
    """The merchant's payment, or a 404 (also for another merchant's id)."""
    payment = db.session.scalars(
        select(Payment).where(Payment.id == payment_id, Payment.merchant_id == merchant.id)
    ).first()
    if payment is None:
        raise NotFound("payment")
    return payment


def list_payments(
    merchant: Merchant,
    *,
    status: str | None = None,
    request_id: str | None = None,
    limit: int = 20,
    starting_after: str | None = None,
) -> tuple[list[Payment], bool]:
    """Newest first, cursor-paginated by id; returns (page, has_more)."""
    query = select(Payment).where(Payment.merchant_id == merchant.id)
    if status:
        query = query.where(Payment.status == status)
    if request_id:
        query = query.where(Payment.request_id == request_id)
    return newest_first(query, Payment, merchant.id, starting_after, limit, "payments")


def refunds_of(payment: Payment) -> list[Refund]:
    return list(
        db.session.scalars(
            select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.created_at)
        )
    )
