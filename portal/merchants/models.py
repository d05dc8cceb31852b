"""Merchants and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model
from portal.ids import new_id

# The reminders of a merchant that set none (docs/reminders.md): 3 days before the due
# date, on it, 7 days after it, 3 days before the link expires.
DEFAULT_REMINDERS = ["due-3", "due+0", "due+7", "expiry-3"]
REMINDER_CHANNELS = ["email", "sms"]


class Merchant(Model):
    __tablename__ = "merchants"
    __table_args__ = (
        CheckConstraint(
            "quiet_start >= 0 AND quiet_start <= 23 AND quiet_end >= 0 AND quiet_end <= 23",
            name="quiet_hours",
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mer"))
    name: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    default_locale: Mapped[str] = mapped_column(String(10), default="en")
    locales: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["en", "fr", "nl", "de"])
    # Largest amount of any request or customer-chosen amount, in minor units.
    ceiling: Mapped[int] = mapped_column(BigInteger)
    logo_url: Mapped[str | None] = mapped_column(String(500))
    accent_color: Mapped[str] = mapped_column(String(7), default="#1f5f8b")
    support_email: Mapped[str | None] = mapped_column(String(254))
    support_phone: Mapped[str | None] = mapped_column(String(32))
    # Where the shop is and its clock: dates read the country's way (en-GB style for a
    # Belgian shop, en-US only for a US one) and times are shown in its zone.
    # What a receipt or statement must say of the seller: legal name, address, VAT or
    # enterprise number (free text, one item a line), printed at the foot of the PDFs.
    legal_details: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str] = mapped_column(String(2), default="BE", server_default="BE")
    time_zone: Mapped[str] = mapped_column(
        String(64), default="Europe/Brussels", server_default="Europe/Brussels"
    )
    # Origins allowed to frame the portal's pages (``frame-ancestors``).
    embed_origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    stripe_account: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A connected account still in onboarding: payments keep going where they went (the
    # platform, or the account before it) until the provider enables charges on it, then
    # it becomes ``stripe_account`` (portal/merchant_console/connect.py).
    stripe_account_pending: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Last event sequence number handed out; bumped under a row lock.
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Last receipt number handed out, the same way: receipt numbers are unique by construction.
    receipt_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The smallest partial or chosen amount this merchant takes (None: the provider's minimum).
    min_payment: Mapped[int | None] = mapped_column(BigInteger)
    # Reminders: the schedule's rules, the channels they use, and the quiet hours (whole
    # hours of the merchant's clock, start to end; equal: none) when none is sent.
    reminder_schedule: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: list(DEFAULT_REMINDERS),
        server_default='["due-3", "due+0", "due+7", "expiry-3"]',
    )  # fmt: skip
    reminder_channels: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: list(REMINDER_CHANNELS), server_default='["email", "sms"]'
    )
    quiet_start: Mapped[int] = mapped_column(Integer, default=21, server_default="21")
    quiet_end: Mapped[int] = mapped_column(Integer, default=8, server_default="8")
    # A daily e-mail of yesterday's payments and refunds to the owners (off by default).
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="merchant")

    @property
    def reminders(self) -> dict[str, Any]:
        """The reminder settings as the API reads and writes them."""
        return {
            "schedule": list(self.reminder_schedule or []),
            "channels": list(self.reminder_channels or []),
            "quiet_hours": {"start": self.quiet_start, "end": self.quiet_end},
        }


class ApiKey(Model):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    # The secret itself is shown once; only its SHA-256 is kept.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # First characters, to let a merchant tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    merchant: Mapped[Merchant] = relationship(back_populates="api_keys")
