"""Merchants and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model
from portal.ids import new_id


class Merchant(Model):
    __tablename__ = "merchants"

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
    # A daily e-mail of yesterday's payments and refunds to the owners (off by default).
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="merchant")


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
