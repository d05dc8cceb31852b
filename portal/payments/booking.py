"""Booking money on a request: what a payment settles on the statement lines, what a
refund undoes, and the refund itself with its event and notice.

Shared by the pay flow (:mod:`portal.payments.services`) and the refunds
(:mod:`portal.payments.refunds`); the caller holds the request's and the payment's
locks, adds and flushes, and commits nothing.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.queue import MAIL_ATTEMPTS, enqueue
from portal.ledger.services import record_event
from portal.payment_requests.models import PaymentRequest, StatementLine
from portal.payments import allocation
from portal.payments.models import Allocation, Payment, Refund
from portal.states import Kind, PaymentStatus, RefundSource, transition

REFUNDABLE = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED)


def allocate(pr: PaymentRequest, payment: Payment) -> dict[str, Any]:
    """Allocate a statement payment to its lines; returns the event's ``allocation``."""
    if pr.kind != Kind.STATEMENT:
        return {"allocation": []}
    lines = line_states(pr)
    if payment.chosen_lines is not None:  # the customer ticked these (the account page)
        chosen = set(payment.chosen_lines)
        lines = [ln for ln in lines if ln.id in chosen]
    shares, unallocated = allocation.allocate_payment(lines, payment.amount)
    write_shares(pr, payment.id, None, shares)
    return {"allocation": [s.as_json() for s in shares], "unallocated": unallocated}


def line_states(pr: PaymentRequest) -> list[allocation.LineState]:
    return [
        allocation.LineState(
            ln.id, ln.position, ln.date, ln.reference, ln.amount, ln.amount_settled or 0
        )
        for ln in pr.statement_lines
    ]


_lines_table = cast(Table, StatementLine.__table__)
_SETTLE = (
    update(_lines_table)
    .where(_lines_table.c.id == bindparam("line_id"))
    .values(amount_settled=bindparam("settled"))
)
_ALLOCATE = insert(cast(Table, Allocation.__table__))


def write_shares(
    pr: PaymentRequest, payment_id: str, refund_id: str | None, shares: list[allocation.Share]
) -> None:
    """The lines' new standing and the allocation rows, as two Core statements of many
    rows each (twenty lines are forty ORM objects to flush otherwise); the lines loaded
    on ``pr`` take their new standing as if it had been read."""
    if not shares:
        return
    lines = {ln.id: ln for ln in pr.statement_lines}
    db.session.flush()  # Core statements do not flush: the payment, its refund, go first
    db.session.execute(
        _SETTLE, [{"line_id": share.line_id, "settled": share.settled_after} for share in shares]
    )
    for share in shares:
        set_committed_value(lines[share.line_id], "amount_settled", share.settled_after)
    now = utcnow()
    db.session.execute(
        _ALLOCATE,
        [
            {"payment_id": payment_id, "refund_id": refund_id, "line_id": share.line_id,
             "amount": share.amount, "created_at": now}
            for share in shares
        ],
    )  # fmt: skip


def reverse_lines(pr: PaymentRequest, payment: Payment, refund: Refund) -> dict[str, Any]:
    """Undo the refunded share of a statement payment on its lines (the documented rule)."""
    if pr.kind != Kind.STATEMENT or not payment.applied:
        return {"allocation": []}
    rows = db.session.execute(
        select(Allocation.line_id, func.sum(Allocation.amount))
        .where(Allocation.payment_id == payment.id)
        .group_by(Allocation.line_id)
    ).all()
    amounts = {ln.id: ln.amount for ln in pr.statement_lines}
    held = {line_id: int(total) for line_id, total in rows if amounts.get(line_id, 0) > 0}
    allocated = sum(int(total) for _, total in rows)
    # What no line took, less what earlier refunds already gave back of it.
    earlier = payment.amount_refunded - refund.amount
    unallocated = max(payment.amount - allocated - earlier, 0)
    shares, _ = allocation.reverse_for_refund(line_states(pr), held, unallocated, refund.amount)
    write_shares(pr, payment.id, refund.id, shares)
    return {"allocation": [s.as_json() for s in shares]}


def book_refund(
    pr: PaymentRequest,
    payment: Payment,
    amount: int,
    provider_refund_id: str | None,
    reason: str | None,
    source: RefundSource,
) -> Refund:
    """Book a refund on the locked payment and request, with its event and notice."""
    payment.amount_refunded += amount
    transition(
        payment,
        PaymentStatus.REFUNDED
        if payment.amount_refunded >= payment.amount
        else PaymentStatus.PARTIALLY_REFUNDED,
    )
    if payment.applied:
        pr.amount_refunded += amount
    refund = Refund(
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        amount=amount,
        currency=payment.currency,
        status="succeeded",
        provider_refund_id=provider_refund_id,
        reason=reason,
        source=source,
    )
    db.session.add(refund)
    db.session.flush()
    extra = reverse_lines(pr, payment, refund)
    extra["refund"] = {
        "id": refund.id,
        "amount": amount,
        "currency": refund.currency,
        "source": str(source),
        "reason": reason,
    }
    record_event("payment.refunded", pr, payment, extra=extra)
    if payment.receipt_email:
        enqueue("send_refund_notice", {"refund_id": refund.id}, max_attempts=MAIL_ATTEMPTS)
    return refund


def note_provider_refunds(payment: Payment, total_refunded: int) -> Refund | None:
    """The provider says ``total_refunded`` went back on this payment (its dashboard): book
    the difference. Said before the payment's success reached the portal (events cross),
    it is kept and booked when the success arrives: in any order, the same books."""
    if payment.status not in REFUNDABLE:
        if payment.status != PaymentStatus.REFUNDED:
            data = dict(payment.provider_data or {})
            data["refunded_total"] = max(int(data.get("refunded_total", 0)), total_refunded)
            payment.provider_data = data
            db.session.flush()
        return None
    missing = min(total_refunded, payment.amount) - payment.amount_refunded
    if missing <= 0:
        return None
    return book_refund(
        payment.request, payment, missing, None, "refunded at the provider", RefundSource.PROVIDER
    )


def book_early_refunds(payment: Payment) -> None:
    """Refunds the provider reported before this payment's success (see above)."""
    early = int((payment.provider_data or {}).get("refunded_total", 0))
    if early:
        note_provider_refunds(payment, early)
