"""Reminders: one row per scheduled reminder of a payment request, and the customers who
asked for none (per merchant, channel and address)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model
from portal.ids import new_id
from portal.states import ReminderStatus, sql_in

SCHEDULED = text(f"status = '{ReminderStatus.SCHEDULED}'")


class Reminder(Model):
    """``key`` is the schedule's rule (``due-3``, ``due+0``, ``due+7``, ``expiry-3``): a
    request has each reminder at most once, held by the unique constraint; the periodic
    duty moves it out of ``scheduled`` with a conditional UPDATE, so one worker sends it."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("request_id", "key", name="uq_reminders_request_key"),
        CheckConstraint(sql_in("status", list(ReminderStatus)), name="status"),
        # The duty reads the due scheduled reminders only.
        Index(
            "ix_reminders_scheduled_due",
            "due_at",
            sqlite_where=SCHEDULED,
            postgresql_where=SCHEDULED,
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rem"))
    request_id: Mapped[str] = mapped_column(ForeignKey("payment_requests.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    key: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10), default=ReminderStatus.SCHEDULED)
    # Why a due reminder was not sent: paid, void, expired, disabled, unsubscribed, …
    reason: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReminderOptOut(Model):
    """A customer's "no more reminders" from one merchant on one channel. Only the
    SHA-256 of the normalised address is kept (what the unsubscribe link signs)."""

    __tablename__ = "reminder_opt_outs"
    __table_args__ = (
        UniqueConstraint("merchant_id", "channel", "address_hash", name="uq_reminder_opt_outs"),
        CheckConstraint("channel IN ('email', 'sms')", name="channel"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ro"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    channel: Mapped[str] = mapped_column(String(10))
    address_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
