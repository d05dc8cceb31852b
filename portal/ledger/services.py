"""Writing events: in the caller's transaction, with a per-merchant sequence number."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from portal.db_types import isoformat
from portal.errors import Invalid
from portal.extensions import db
from portal.ledger.callbacks import fan_out
from portal.ledger.models import Event
from portal.merchants.models import Merchant
from portal.states import EventType

EVENT_TYPES = tuple(EventType)


def take_numbers(merchant_id: str, events: int, receipts: int) -> tuple[int, int]:
    """Bump the merchant's event counter by ``events`` and its receipt counter by
    ``receipts`` in one UPDATE (which locks its row until commit, as each of them alone
    would): (the first of the event numbers taken, the last receipt number taken). A
    fulfilment takes its receipt's and its one or two events' numbers this way."""
    event_seq, receipt_seq = db.session.execute(
        update(Merchant)
        .where(Merchant.id == merchant_id)
        .values(event_seq=Merchant.event_seq + events, receipt_seq=Merchant.receipt_seq + receipts)
        .returning(Merchant.event_seq, Merchant.receipt_seq)
    ).one()
    return event_seq - events + 1, receipt_seq


def next_event_seq(merchant_id: str) -> int:
    """Bump and return the merchant's event counter (locks its row until commit)."""
    return take_numbers(merchant_id, events=1, receipts=0)[0]


def request_summary(pr: Any) -> dict[str, Any]:
    """What a ledger needs to know of a payment request to settle without calling back."""
    summary: dict[str, Any] = {
        "id": pr.id,
        "kind": pr.kind,
        "status": pr.status,
        "reference": pr.reference,
        "currency": pr.currency,
        "amount": pr.amount,
        "amount_paid": pr.amount_paid,
        "amount_due": pr.amount_due,
        "customer": {"reference": pr.customer_reference, "name": pr.customer_name},
        "metadata": pr.metadata_dict,
        # A payment made through a reusable top-up link: the link's own request.
        "parent_id": pr.parent_request_id,
    }
    if pr.kind == "statement":
        # Each line's standing; what one payment settled is the event's ``allocation``.
        summary["statement"] = {
            "lines": [
                {
                    "position": ln.position,
                    "reference": ln.reference,
                    "amount": ln.amount,
                    "amount_settled": ln.amount_settled or 0,
                    "settled": (ln.amount_settled or 0) == ln.amount,
                }
                for ln in pr.statement_lines
            ]
        }
    elif pr.kind == "order_deposit":
        summary["order"] = {"reference": pr.order_reference, "total": pr.order_total}
    return summary


def payment_summary(payment: Any) -> dict[str, Any]:
    return {
        "id": payment.id,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "amount_refunded": payment.amount_refunded,
        # False for money the portal could not apply to the request (refunded in full).
        "applied": bool(payment.applied),
        "method": {
            "type": payment.method_type,
            "card_brand": payment.card_brand,
            "card_last4": payment.card_last4,
        },
        "provider": payment.provider,
        # A share of an account-page payment: the one charge's id is the group's.
        "provider_payment_id": payment.provider_payment_id
        or (payment.group.provider_payment_id if payment.group_id else None),
        "group_id": payment.group_id,
        "provider_charge_id": payment.provider_charge_id,
        "receipt_number": payment.receipt_number,
        "succeeded_at": isoformat(payment.succeeded_at),
    }


def record_event(
    event_type: str,
    request: Any,
    payment: Any = None,
    extra: dict[str, Any] | None = None,
    *,
    seq: int | None = None,
) -> Event:
    """Write an event in the current transaction (no commit) and queue its deliveries.
    ``seq``: its number, when the caller took it (:func:`take_numbers`)."""
    return record_events(request, payment, [(event_type, extra)], seq=seq)[0]


def record_events(
    request: Any,
    payment: Any,
    kinds: list[tuple[str, dict[str, Any] | None]],
    *,
    seq: int | None = None,
) -> list[Event]:
    """The events of one change of ``request`` (``(type, extra)`` each, in order), written
    in the current transaction (no commit): numbered from ``seq`` when the caller took
    the numbers (:func:`take_numbers`), else each from the merchant's counter. What they
    say of the request and the payment is built once, and the merchant's endpoints are
    read once for all their deliveries."""
    for event_type, _ in kinds:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
    summary = request_summary(request)
    paid = payment_summary(payment) if payment is not None else None
    events = []
    for offset, (event_type, extra) in enumerate(kinds):
        data: dict[str, Any] = {"payment_request": summary}
        if paid is not None:
            data["payment"] = paid
        if extra:
            data.update(extra)
        events.append(
            Event(
                merchant_id=request.merchant_id,
                seq=next_event_seq(request.merchant_id) if seq is None else seq + offset,
                type=event_type,
                request_id=request.id,
                payment_id=payment.id if payment is not None else None,
                data=data,
            )
        )
    db.session.add_all(events)
    db.session.flush()
    fan_out(events)
    return events


def list_events(
    merchant_id: str, starting_after: str | None, limit: int, event_type: str | None = None
) -> tuple[list[Event], bool]:
    """The merchant's events after ``starting_after``, oldest first; (page, has_more)."""
    query = select(Event).where(Event.merchant_id == merchant_id)
    if event_type:
        query = query.where(Event.type == event_type)
    if starting_after:
        cursor = db.session.get(Event, starting_after)
        if cursor is None or cursor.merchant_id != merchant_id:
            raise Invalid(
                "invalid_cursor", "starting_after is not one of your events.", "starting_after"
            )
        query = query.where(Event.seq > cursor.seq)
    rows = db.session.scalars(query.order_by(Event.seq).limit(limit + 1)).all()
    return list(rows[:limit]), len(rows) > limit
