"""Events: the merchant-facing record of every state change (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import db
from portal.ids import new_id


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("merchant_id", "seq", name="uq_events_merchant_seq"),
        Index("ix_events_request", "request_id"),
        Index("ix_events_payment", "payment_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("evt"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    # Per-merchant, strictly increasing: the order a ledger should apply events in.
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
