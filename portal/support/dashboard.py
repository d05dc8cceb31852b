"""The console's dashboard: counts, money collected, what needs attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from portal.db_types import utcnow
from portal.extensions import db
from portal.ledger.models import CallbackDelivery, Event
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment, Refund
from portal.states import OPEN_ATTEMPT, CallbackStatus, PaymentStatus
from portal.support.models import StaffUser
from portal.support.search import scoped


@dataclass
class Stats:
    created: int
    opened: int
    paid: int
    failed_payments: int
    collected: dict[str, Collected]


@dataclass
class Collected:
    """Money applied to requests in a period, and refunded in it; net is what stays."""

    gross: int
    refunded: int

    @property
    def net(self) -> int:
        return self.gross - self.refunded


def stats(user: StaffUser, since: datetime) -> Stats:
    base = scoped(user, select(func.count(PaymentRequest.id))).where(
        PaymentRequest.created_at >= since
    )
    created = db.session.scalar(base) or 0
    opened = db.session.scalar(base.where(PaymentRequest.first_opened_at.is_not(None))) or 0
    paid_q = scoped(user, select(func.count(PaymentRequest.id))).where(
        PaymentRequest.paid_at >= since
    )
    paid = db.session.scalar(paid_q) or 0
    payments = select(Payment).where(Payment.created_at >= since)
    if user.merchant_ids:
        payments = payments.where(Payment.merchant_id.in_(user.merchant_ids))
    failed = db.session.scalar(
        select(func.count()).select_from(
            payments.where(Payment.status == PaymentStatus.FAILED).subquery()
        )
    )
    collected_rows = db.session.execute(
        select(Payment.currency, func.sum(Payment.amount))
        .where(Payment.succeeded_at >= since, Payment.applied.is_(True), *_payment_scope(user))
        .group_by(Payment.currency)
    ).all()
    refunded_rows = db.session.execute(
        select(Refund.currency, func.sum(Refund.amount))
        .join(Payment, Payment.id == Refund.payment_id)
        .where(Refund.created_at >= since, Payment.applied.is_(True), *_payment_scope(user))
        .group_by(Refund.currency)
    ).all()
    refunded = {c: int(total) for c, total in refunded_rows}
    collected = {c: int(total) for c, total in collected_rows}
    money = {
        c: Collected(collected.get(c, 0), refunded.get(c, 0))
        for c in sorted(set(collected) | set(refunded))
    }
    return Stats(created, opened, paid, failed or 0, money)


def _payment_scope(user: StaffUser) -> list[Any]:
    return [Payment.merchant_id.in_(user.merchant_ids)] if user.merchant_ids else []


def daily_paid(user: StaffUser, days: int = 30) -> list[tuple[date, int]]:
    """Payments succeeded per day, oldest first (for the chart)."""
    since = utcnow() - timedelta(days=days - 1)
    rows = db.session.scalars(
        select(Payment.succeeded_at).where(Payment.succeeded_at >= since, *_payment_scope(user))
    ).all()
    counts: dict[date, int] = {}
    for at in rows:
        if at is None:
            continue
        counts[at.date()] = counts.get(at.date(), 0) + 1
    start = since.date()
    days_list = [start + timedelta(days=i) for i in range(days)]
    return [(day, counts.get(day, 0)) for day in days_list]


def callbacks_per_merchant(user: StaffUser) -> list[tuple[str, int, int]]:
    """(merchant name, pending deliveries that failed at least once, dead-lettered)."""
    query = (
        select(
            Merchant.name,
            func.sum(
                db.case(
                    (
                        (CallbackDelivery.status == CallbackStatus.PENDING)
                        & (CallbackDelivery.attempts > 0),
                        1,
                    ),
                    else_=0,
                )
            ),
            func.sum(db.case((CallbackDelivery.status == CallbackStatus.DEAD, 1), else_=0)),
        )
        .join(Merchant, Merchant.id == CallbackDelivery.merchant_id)
        .group_by(Merchant.name)
    )
    if user.merchant_ids:
        query = query.where(CallbackDelivery.merchant_id.in_(user.merchant_ids))
    return [(name, int(f or 0), int(d or 0)) for name, f, d in db.session.execute(query)]


def needs_attention(user: StaffUser) -> list[tuple[str, str, str]]:
    """(kind, request id, what) for dead callbacks, stuck and flagged payments."""
    items: list[tuple[str, str, str]] = []
    dead = (
        select(CallbackDelivery, Event)
        .join(Event, Event.id == CallbackDelivery.event_id)
        .where(CallbackDelivery.status == CallbackStatus.DEAD)
    )
    if user.merchant_ids:
        dead = dead.where(CallbackDelivery.merchant_id.in_(user.merchant_ids))
    for _delivery, event in db.session.execute(dead.limit(50)):
        items.append(("dead_callback", event.request_id or "", f"{event.type} {event.id}"))
    stuck_before = utcnow() - timedelta(hours=1)
    payments = select(Payment).where(
        or_(
            Payment.flagged.is_(True),
            Payment.status.in_(OPEN_ATTEMPT)
            & (Payment.updated_at < stuck_before)
            & (Payment.provider != "sandbox"),
        ),
        *_payment_scope(user),
    )
    for p in db.session.scalars(payments.limit(50)):
        kind = "flagged" if p.flagged else "stuck_payment"
        items.append((kind, p.request_id, p.flagged_reason or f"{p.id} {p.status}"))
    return items
