"""Stored answers for ``Idempotency-Key`` requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model


class IdempotencyKey(Model):
    __tablename__ = "idempotency_keys"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Method, path and SHA-256 of the body: the same key with another body is a 409.
    fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
