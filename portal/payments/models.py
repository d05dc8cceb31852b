"""Payments (one per attempt) and their refunds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import db
from portal.ids import new_id
from portal.payment_requests.models import PaymentRequest
from portal.states import PaymentStatus


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_request", "request_id", "created_at"),
        Index("ix_payments_status_updated", "status", "updated_at"),
        Index("ix_payments_succeeded", "succeeded_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pay"))
    request_id: Mapped[str] = mapped_column(ForeignKey("payment_requests.id"))
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
    receipt_email: Mapped[str | None] = mapped_column(String(254))
    receipt_number: Mapped[str | None] = mapped_column(String(40), unique=True)
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
    refunds: Mapped[list[Refund]] = relationship(
        back_populates="payment", order_by="Refund.created_at"
    )

    @property
    def refundable(self) -> int:
        return self.amount - self.amount_refunded


class Refund(db.Model):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("re"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="succeeded")
    provider_refund_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="refunds")
