"""Events: the merchant-facing record of every state change (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_types import UTCDateTime, isoformat, unique_where, utcnow
from portal.extensions import Model
from portal.ids import new_id
from portal.states import CallbackStatus


class Event(Model):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("merchant_id", "seq", name="uq_events_merchant_seq"),
        Index("ix_events_request", "request_id"),
        Index("ix_events_payment", "payment_id"),
        # A payment is settled once, a request paid once: whatever races, the ledger can
        # never be told twice.
        unique_where("uq_events_payment_succeeded", "payment_id", "type = 'payment.succeeded'"),
        unique_where("uq_events_request_paid", "request_id", "type = 'payment_request.paid'"),
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


class CallbackEndpoint(Model):
    """A merchant's ledger URL; each has its own ``whsec_`` signing secret."""

    __tablename__ = "callback_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("we"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    # During a rotation both secrets sign, until this time.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    # Empty: every event type.
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Deleted by the merchant: gone from every list and from redelivery, its deliveries kept
    # (support reads them).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CallbackDelivery(Model):
    """One event for one endpoint: retried on its schedule until it succeeds or is dead."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_callback_deliveries_event_endpoint"),
        Index("ix_callback_deliveries_status", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("del"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("callback_endpoints.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=CallbackStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    endpoint: Mapped[CallbackEndpoint] = relationship()
    event: Mapped[Event] = relationship()


class CallbackAttempt(Model):
    """Every HTTP try, for support: when, what came back, how long it took."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("callback_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def event_body(event: Event) -> dict[str, Any]:
    """The JSON body posted to callbacks and returned by the pull API."""
    return {
        "id": event.id,
        "type": event.type,
        "sequence": event.seq,
        "created_at": isoformat(event.created_at),
        "data": event.data,
    }
