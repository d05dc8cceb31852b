"""Support staff, their server-side sessions, and the append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model
from portal.ids import new_id


class StaffUser(Model):
    __tablename__ = "staff_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("stf"))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))  # support | admin
    # Merchants this person may see; empty: every merchant.
    merchant_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    time_zone: Mapped[str] = mapped_column(String(64), default="Europe/Brussels")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by ``flask staff disable``: no sign-in, and every session stops at its next request.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The TOTP time step (30 s) of the last code accepted: a code is good once.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class StaffSession(Model):
    """A login; deleting the row ends it, whatever cookie is replayed later."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("staff_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[StaffUser] = relationship(lazy="joined")


class AuditLog(Model):
    """Who did what, when and why. The app only ever inserts rows."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    staff_id: Mapped[str] = mapped_column(String(40), index=True)
    staff_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40), index=True)
    merchant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    target_id: Mapped[str] = mapped_column(String(60), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
