"""Payments (one per attempt) and their refunds."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_types import UTCDateTime, unique_where, utcnow
from portal.extensions import Model
from portal.ids import new_id
from portal.payment_requests.models import PaymentRequest
from portal.states import OPEN_ATTEMPT, SETTLED, PaymentStatus, RefundSource, sql_in

# At most one open attempt per request: a second tab or a double click reuses it, and
# replacing it cancels it (at the provider first) before another may exist.
_OPEN = sql_in("status", OPEN_ATTEMPT)


class Payment(Model):
    __tablename__ = "payments"
    statuses: ClassVar[type[StrEnum]] = PaymentStatus
    __table_args__ = (
        Index("ix_payments_request", "request_id", "created_at"),
        Index("ix_payments_status_updated", "status", "updated_at"),
        Index("ix_payments_succeeded", "succeeded_at"),
        unique_where("uq_payments_open_attempt", "request_id", _OPEN),
        UniqueConstraint("merchant_id", "receipt_number", name="uq_payments_merchant_receipt"),
        CheckConstraint(sql_in("status", list(PaymentStatus)), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="refunded_in_range"
        ),
        CheckConstraint(f"NOT applied OR {sql_in('status', SETTLED)}", name="applied_settled"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pay"))
    request_id: Mapped[str] = mapped_column(ForeignKey("payment_requests.id"))
    # Set when the payment is one request's share of an account-page payment (one charge
    # at the provider for several requests, docs/customer-portal.md).
    group_id: Mapped[str | None] = mapped_column(ForeignKey("payment_groups.id"), index=True)
    # The statement lines the customer ticked (ids): the payment settles these only.
    chosen_lines: Mapped[list[int] | None] = mapped_column(JSON)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.PENDING)
    provider: Mapped[str] = mapped_column(String(20))
    # e.g. Stripe's pi_… and ch_…; unique so a provider event maps to one payment.
    provider_payment_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    provider_charge_id: Mapped[str | None] = mapped_column(String(100), index=True)
    method_type: Mapped[str | None] = mapped_column(String(40))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # True once the payment counts in its request's amount_paid (and its lines); money
    # that arrived for a closed attempt or a request no longer payable is refunded instead.
    applied: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # What the unapplied money waits for (e.g. "superseded"): the automatic refund's reason.
    refund_due: Mapped[str | None] = mapped_column(String(40))
    receipt_email: Mapped[str | None] = mapped_column(String(254))
    # Per merchant, from the merchant's receipt sequence: unique by construction.
    receipt_number: Mapped[str | None] = mapped_column(String(40))
    # When the receipt email left (None: not yet, or no address known).
    receipt_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locale: Mapped[str | None] = mapped_column(String(10))
    # Set when the provider's amount/currency does not match: support must look.
    flagged_reason: Mapped[str | None] = mapped_column(String(300))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    provider_data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    request: Mapped[PaymentRequest] = relationship()
    group: Mapped[PaymentGroup | None] = relationship(back_populates="members")
    refunds: Mapped[list[Refund]] = relationship(
        back_populates="payment", order_by="Refund.created_at"
    )

    @property
    def refundable(self) -> int:
        return self.amount - self.amount_refunded

    @property
    def settled(self) -> bool:
        return self.status in SETTLED


class Refund(Model):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status = 'succeeded'", name="status"),
        CheckConstraint(sql_in("source", list(RefundSource)), name="source"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("re"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="succeeded")
    provider_refund_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    reason: Mapped[str | None] = mapped_column(String(300))
    # Who asked: the merchant (API), support, the provider's dashboard, or the portal
    # itself (money that arrived for a closed attempt).
    source: Mapped[str] = mapped_column(
        String(20), default=RefundSource.MERCHANT, server_default=RefundSource.MERCHANT
    )
    # When the customer's refund notice left (None: not yet, or no address known).
    notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="refunds")


class Allocation(Model):
    """What one payment settled (or one refund undid) on one statement line."""

    __tablename__ = "payment_allocations"
    __table_args__ = (
        Index("ix_payment_allocations_payment", "payment_id"),
        Index("ix_payment_allocations_line", "line_id"),
        CheckConstraint("amount <> 0", name="amount_nonzero"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    # Set on the rows a refund wrote (they reverse the payment's own rows).
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("statement_lines.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentGroup(Model):
    """One charge at the provider for several requests of one customer (the account page):
    its members are ordinary payments, one per request, each with its share."""

    __tablename__ = "payment_groups"
    statuses: ClassVar[type[StrEnum]] = PaymentStatus
    __table_args__ = (
        # One open attempt per customer and merchant: a second tab waits and reuses it.
        unique_where("uq_payment_groups_open_attempt", "account_key", _OPEN),
        CheckConstraint(
            sql_in(
                "status",
                [
                    PaymentStatus.PENDING,
                    PaymentStatus.SUCCEEDED,
                    PaymentStatus.FAILED,
                    PaymentStatus.CANCELED,
                    PaymentStatus.PROCESSING,
                ],
            ),
            name="status",
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pg"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    customer_reference: Mapped[str] = mapped_column(String(100))
    # merchant id and customer reference in one column, for the unique index.
    account_key: Mapped[str] = mapped_column(String(160))
    # What was ticked (request ids, line ids, top-up): a second click reuses the attempt.
    selection_key: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.PENDING)
    provider: Mapped[str] = mapped_column(String(20))
    provider_payment_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    method_type: Mapped[str | None] = mapped_column(String(40))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    flagged_reason: Mapped[str | None] = mapped_column(String(300))
    receipt_email: Mapped[str | None] = mapped_column(String(254))
    receipt_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locale: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    members: Mapped[list[Payment]] = relationship(
        back_populates="group", order_by="Payment.request_id"
    )
