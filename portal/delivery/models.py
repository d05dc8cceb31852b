"""Each attempt to send a customer their link, by email or SMS (support sees them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model
from portal.ids import new_id
from portal.states import LinkDeliveryStatus


class LinkDelivery(Model):
    __tablename__ = "link_deliveries"
    __table_args__ = (Index("ix_link_deliveries_request", "request_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ld"))
    request_id: Mapped[str] = mapped_column(ForeignKey("payment_requests.id"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    # Only a masked form is kept here; the full address lives in the job until it is cleaned.
    destination: Mapped[str] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default=LinkDeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the delivery is a reminder (portal/reminders/), not a link asked for.
    reminder_id: Mapped[str | None] = mapped_column(ForeignKey("reminders.id"))


class ShortLink(Model):
    """``/s/<code>``: a short name of a request's link, for SMS (portal/delivery/shortlinks.py).

    The code is random (stored here, unique) and carries a short signature, so a forged
    one is refused before the database is asked. One per request."""

    __tablename__ = "short_links"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("payment_requests.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
