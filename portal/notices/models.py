"""What the portal tells a merchant about its own account: trouble with its callback
endpoints and the optional daily digest of payments (docs/merchant-console.md).

One row per e-mail decided; the database holds the rules: at most one dead-letter
notice waiting per endpoint (later dead letters join it), one digest per merchant and
day, whatever the number of workers.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_types import UTCDateTime, unique_where, utcnow
from portal.extensions import Model
from portal.ids import new_id
from portal.states import sql_in

KINDS = ("endpoint_disabled", "dead_letters", "digest")


class MerchantNotice(Model):
    __tablename__ = "merchant_notices"
    __table_args__ = (
        CheckConstraint(sql_in("kind", KINDS), name="kind"),
        CheckConstraint("deliveries >= 0", name="deliveries_positive"),
        CheckConstraint("(kind = 'digest') = (day IS NOT NULL)", name="digest_has_day"),
        CheckConstraint("(kind = 'digest') = (endpoint_id IS NULL)", name="endpoint_or_digest"),
        # Dead letters of one endpoint wait together: one e-mail for all of them.
        unique_where(
            "uq_merchant_notices_waiting",
            "endpoint_id",
            "kind = 'dead_letters' AND sent_at IS NULL",
        ),
        # One digest per merchant and (its local) day.
        Index(
            "uq_merchant_notices_digest",
            "merchant_id",
            "day",
            unique=True,
            sqlite_where=text("kind = 'digest'"),
            postgresql_where=text("kind = 'digest'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mn"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    endpoint_id: Mapped[str | None] = mapped_column(ForeignKey("callback_endpoints.id"), index=True)
    # The digest's day, in the merchant's time zone.
    day: Mapped[date | None] = mapped_column(Date)
    # Dead-lettered deliveries this e-mail reports.
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    # When the job sends it: an hour after the endpoint's previous dead-letter e-mail.
    send_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
