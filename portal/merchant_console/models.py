"""Merchant users (owners and staff of one merchant) and their server-side sessions.

What they do is written to the shared audit log (:class:`portal.support.models.AuditLog`)
with the user's id and email in the ``staff_*`` columns, so the merchant's owner and the
support console read the same entries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model
from portal.ids import new_id
from portal.merchants.models import Merchant
from portal.states import sql_in

ROLES = ("owner", "staff")


class MerchantUser(Model):
    __tablename__ = "merchant_users"
    __table_args__ = (
        CheckConstraint(sql_in("role", ROLES), name="role"),
        CheckConstraint("refund_limit >= 0", name="refund_limit_positive"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mu"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    # One account per address across merchants: the sign-in form asks for nothing else.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    # The largest refund a staff member may make, in the merchant's minor units.
    refund_limit: Mapped[int] = mapped_column(BigInteger, default=0)
    # None until the invitation is accepted.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The time step of the last TOTP code accepted: a code is good once.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invited_by: Mapped[str | None] = mapped_column(String(40))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    merchant: Mapped[Merchant] = relationship(lazy="joined")

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def active(self) -> bool:
        return self.password_hash is not None and self.disabled_at is None


class MerchantSession(Model):
    """A sign-in; deleting the row ends it, whatever cookie is replayed later."""

    __tablename__ = "merchant_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("merchant_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[MerchantUser] = relationship(lazy="joined")


class MerchantLogo(Model):
    """A logo as the portal re-encoded it (PNG), named by the SHA-256 of its bytes: the URL
    changes with the image, so it is served with a long cache life."""

    __tablename__ = "merchant_logos"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
