"""The whole story of one payment request, as the console shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from portal.delivery.models import LinkDelivery
from portal.extensions import db
from portal.ledger.models import CallbackAttempt, CallbackDelivery, Event
from portal.merchants.models import ApiKey
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment, Refund
from portal.reminders.services import reminders_for


@dataclass
class Entry:
    at: datetime | None
    kind: str
    title: str
    detail: str = ""
    raw: dict[str, Any] | None = None
    status: str = ""
    extra: list[Any] = field(default_factory=list)
    code: str = ""


def _reminders(pr: PaymentRequest) -> list[Entry]:
    """Each scheduled reminder: when it is (or was) due, and what became of it."""
    return [
        Entry(r.done_at or r.due_at, "reminder", r.key, r.reason or "", status=r.status)
        for r in reminders_for(pr.id)
    ]


def timeline(pr: PaymentRequest) -> list[Entry]:
    entries: list[Entry] = []
    key = db.session.get(ApiKey, pr.created_by_key_id) if pr.created_by_key_id else None
    entries.append(
        Entry(pr.created_at, "created", "created",
              f"API key {key.prefix}… ({key.label or key.id})" if key else "")
    )  # fmt: skip
    for d in db.session.scalars(select(LinkDelivery).where(LinkDelivery.request_id == pr.id)):
        entries.append(
            Entry(d.sent_at or d.created_at, "sent", d.channel, d.destination,
                  status=d.status, code=d.error or "")
        )  # fmt: skip
    entries.extend(_reminders(pr))
    if pr.first_opened_at:
        entries.append(
            Entry(pr.first_opened_at, "opened", str(pr.open_count), "", extra=[pr.last_opened_at])
        )
    payments = db.session.scalars(
        select(Payment).where(Payment.request_id == pr.id).order_by(Payment.created_at)
    ).all()
    for p in payments:
        method = f"{p.card_brand or p.method_type or ''} {p.card_last4 or ''}".strip()
        entries.append(
            Entry(p.created_at, "payment", p.id,
                  f"{p.provider} {p.provider_payment_id or ''} {method}".strip(),
                  status=p.status, code=p.failure_code or "",
                  extra=[p.amount, p.currency, p.flagged_reason if p.flagged else ""])
        )  # fmt: skip
        if p.succeeded_at:
            entries.append(Entry(p.succeeded_at, "succeeded", p.id, p.receipt_number or ""))
            entries.append(
                Entry(p.receipt_sent_at or p.succeeded_at, "receipt", p.receipt_email or "",
                      status="sent" if p.receipt_sent_at else
                      ("queued" if p.receipt_email else "no address"))
            )  # fmt: skip
        if p.succeeded_at and not p.applied:
            # Money the portal could not apply: refunded automatically (or about to be).
            entries.append(Entry(p.succeeded_at, "unapplied", p.id, p.refund_due or ""))
        for r in db.session.scalars(select(Refund).where(Refund.payment_id == p.id)):
            detail = f"{r.source}: {r.reason}" if r.reason else str(r.source)
            entries.append(
                Entry(r.created_at, "refund", r.id, detail, extra=[r.amount, r.currency])
            )
    events = db.session.scalars(
        select(Event).where(Event.request_id == pr.id).order_by(Event.seq)
    ).all()
    for event in events:
        deliveries = db.session.scalars(
            select(CallbackDelivery).where(CallbackDelivery.event_id == event.id)
        ).all()
        attempts: list[tuple[CallbackDelivery, CallbackAttempt]] = []
        for delivery in deliveries:
            attempts.extend(
                (delivery, a)
                for a in db.session.scalars(
                    select(CallbackAttempt)
                    .where(CallbackAttempt.delivery_id == delivery.id)
                    .order_by(CallbackAttempt.id)
                )
            )
        entries.append(
            Entry(event.created_at, "event", event.type, event.id,
                  raw={"id": event.id, "type": event.type, "sequence": event.seq,
                       "data": event.data},
                  status=", ".join(sorted({d.status for d in deliveries})), extra=attempts)
        )  # fmt: skip
    if pr.voided_at:
        entries.append(Entry(pr.voided_at, "voided", "voided"))
    entries.sort(key=lambda e: (e.at is None, e.at))
    return entries
