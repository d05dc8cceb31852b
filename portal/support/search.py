"""What a staff member may see (scope) and the console's search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import or_, select

from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.support.models import StaffUser


def in_scope(user: StaffUser, merchant_id: str) -> bool:
    return not user.merchant_ids or merchant_id in user.merchant_ids


def scoped(user: StaffUser, query: Any) -> Any:
    if user.merchant_ids:
        return query.where(PaymentRequest.merchant_id.in_(user.merchant_ids))
    return query


def get_request(user: StaffUser, request_id: str) -> PaymentRequest | None:
    pr = db.session.get(PaymentRequest, request_id)
    return pr if pr is not None and in_scope(user, pr.merchant_id) else None


@dataclass
class SearchQuery:
    text: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None


def _match(text: str) -> Any:
    """The condition for what was typed: an id, a provider id, an email, a phone, a reference
    or the start of a customer name — each an indexed lookup."""
    if text.startswith("pr_"):
        return PaymentRequest.id == text
    if text.startswith(("pay_", "pi_", "ch_", "sbx_")):
        ids = select(Payment.request_id).where(
            or_(
                Payment.id == text,
                Payment.provider_payment_id == text,
                Payment.provider_charge_id == text,
            )
        )
        return PaymentRequest.id.in_(ids)
    if "@" in text:
        return PaymentRequest.customer_email == text.lower()  # stored lower-cased
    digits = text.replace(" ", "").replace("-", "").replace(".", "")
    if digits.lstrip("+").isdigit() and len(digits) >= 8:
        try:
            number = phonenumbers.parse(digits, "BE")
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            e164 = digits
        return PaymentRequest.customer_phone == e164
    return or_(
        PaymentRequest.reference == text,
        PaymentRequest.customer_reference == text,
        PaymentRequest.order_reference == text,
        PaymentRequest.customer_name.like(f"{_escape(text)}%", escape="\\"),
    )


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(user: StaffUser, q: SearchQuery, limit: int = 50) -> list[PaymentRequest]:
    query = scoped(user, select(PaymentRequest))
    if q.text.strip():
        query = query.where(_match(q.text.strip()))
    if q.status:
        query = query.where(PaymentRequest.status == q.status)
    if q.date_from:
        query = query.where(PaymentRequest.created_at >= _start(q.date_from))
    if q.date_to:
        query = query.where(PaymentRequest.created_at < _start(q.date_to + timedelta(days=1)))
    return list(db.session.scalars(query.order_by(PaymentRequest.created_at.desc()).limit(limit)))


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)
