"""Stripe events seen, by id: a duplicate delivery is acknowledged and ignored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model


class StripeEvent(Model):
    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    account: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
