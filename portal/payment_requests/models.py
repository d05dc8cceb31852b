"""Payment requests of the three kinds, with their statement and order lines."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model
from portal.ids import new_id
from portal.merchants.models import Merchant
from portal.states import Kind, RequestStatus, sql_in

# The most a request may ever receive: the order's total when the customer may pay the
# whole order, the top-up's maximum when the customer chooses, else the amount asked.
PAYABLE_CAP = (
    "CASE WHEN allow_full_payment AND order_total IS NOT NULL THEN order_total "
    "WHEN amount IS NULL THEN COALESCE(wallet_max, 0) ELSE amount END"
)


class PaymentRequest(Model):
    __tablename__ = "payment_requests"
    statuses: ClassVar[type[StrEnum]] = RequestStatus
    __table_args__ = (
        Index("ix_payment_requests_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_payment_requests_merchant_reference", "merchant_id", "reference"),
        Index("ix_payment_requests_merchant_customer_ref", "merchant_id", "customer_reference"),
        Index("ix_payment_requests_customer_email", "customer_email"),
        Index("ix_payment_requests_customer_phone", "customer_phone"),
        Index("ix_payment_requests_customer_name", "customer_name"),
        Index("ix_payment_requests_created", "created_at"),
        Index("ix_payment_requests_paid", "paid_at"),
        Index("ix_payment_requests_status_expires", "status", "expires_at"),
        CheckConstraint(sql_in("status", list(RequestStatus)), name="status"),
        CheckConstraint(sql_in("kind", list(Kind)), name="kind"),
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
        CheckConstraint(f"amount_paid >= 0 AND amount_paid <= {PAYABLE_CAP}", name="paid_in_cap"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount_paid", name="refunded_in_paid"
        ),
        CheckConstraint("order_total IS NULL OR order_total > 0", name="order_total_positive"),
        CheckConstraint(
            "wallet_min IS NULL OR (wallet_min > 0 AND (wallet_max IS NULL "
            "OR wallet_max >= wallet_min))",
            name="wallet_bounds",
        ),
        # A reusable top-up is a parent that is never paid itself: each payment through its
        # link is made on a child (docs/api.md, "Reusable top-up links").
        CheckConstraint(
            "NOT reusable OR (kind = 'wallet_topup' AND amount_paid = 0 "
            "AND parent_request_id IS NULL)",
            name="reusable_never_paid",
        ),
        CheckConstraint(
            "(parent_request_id IS NULL) = (parent_nonce IS NULL)", name="child_has_nonce"
        ),
        # One child per pay form sent (a double click reuses the first one's).
        Index("uq_payment_requests_parent_nonce", "parent_request_id", "parent_nonce", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pr"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=RequestStatus.OPEN)
    currency: Mapped[str] = mapped_column(String(3))
    # What the customer is asked to pay; None for a customer-chosen top-up.
    amount: Mapped[int | None] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    reference: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_email: Mapped[str | None] = mapped_column(String(254))
    customer_phone: Mapped[str | None] = mapped_column(String(20))
    customer_locale: Mapped[str | None] = mapped_column(String(10))
    customer_reference: Mapped[str | None] = mapped_column(String(100))
    due_date: Mapped[date | None] = mapped_column(Date)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    allow_partial: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_full_payment: Mapped[bool] = mapped_column(Boolean, default=False)
    # False: no reminders for this request (the API's ``reminders: false``).
    reminders: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # statement
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    balance: Mapped[int | None] = mapped_column(BigInteger)
    # order deposit
    order_reference: Mapped[str | None] = mapped_column(String(100))
    order_total: Mapped[int | None] = mapped_column(BigInteger)
    # wallet top-up
    wallet_min: Mapped[int | None] = mapped_column(BigInteger)
    wallet_max: Mapped[int | None] = mapped_column(BigInteger)
    wallet_suggested: Mapped[list[int]] = mapped_column(JSON, default=list)

    created_by_key_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Link opens, for support (no IP kept unless the operator asks).
    open_count: Mapped[int] = mapped_column(Integer, default=0)
    first_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)
    # Reusable top-ups: the parent takes payments through children made per pay form.
    reusable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    parent_request_id: Mapped[str | None] = mapped_column(
        ForeignKey("payment_requests.id"), index=True
    )
    parent_nonce: Mapped[str | None] = mapped_column(String(64))
    # The last "ask for a new link" that was passed on to the merchant (once a day).
    renewal_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    merchant: Mapped[Merchant] = relationship(lazy="joined")
    statement_lines: Mapped[list[StatementLine]] = relationship(
        order_by="StatementLine.position", cascade="all, delete-orphan"
    )
    order_lines: Mapped[list[OrderLine]] = relationship(
        order_by="OrderLine.position", cascade="all, delete-orphan"
    )

    @property
    def amount_due(self) -> int | None:
        """What remains to pay on the asked amount (None for a free top-up)."""
        if self.amount is None:
            return None
        return max(self.amount - self.amount_paid, 0)

    @property
    def metadata_dict(self) -> dict[str, Any]:
        return dict(self.metadata_ or {})

    @property
    def payable_cap(self) -> int:
        """The most this request may ever receive (``PAYABLE_CAP``, held by a CHECK too)."""
        if self.allow_full_payment and self.order_total is not None:
            return self.order_total
        if self.amount is None:
            return self.wallet_max or 0
        return self.amount

    def is_expired(self, now: datetime | None = None) -> bool:
        """Expired in fact, even before the periodic job has written the status."""
        if self.status == RequestStatus.EXPIRED:
            return True
        if self.reusable:
            return False  # open until voided (its expires_at is a far-off sentinel)
        return self.status == RequestStatus.OPEN and self.expires_at <= (now or utcnow())


class StatementLine(Model):
    __tablename__ = "statement_lines"
    __table_args__ = (
        # What payments settled on the line (netted, for a credit), never past the line.
        CheckConstraint(
            "(amount >= 0 AND amount_settled >= 0 AND amount_settled <= amount) OR "
            "(amount < 0 AND amount_settled <= 0 AND amount_settled >= amount)",
            name="settled_in_line",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("payment_requests.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    date: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str] = mapped_column(String(300))
    amount: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(100))
    # The sum of the line's allocations (portal/payments/allocation.py), kept beside them.
    amount_settled: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    @property
    def settled(self) -> bool:
        return self.amount_settled == self.amount


class OrderLine(Model):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("payment_requests.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)

    @property
    def total(self) -> int:
        return self.quantity * self.unit_amount
