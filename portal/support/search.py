"""What a staff member may see (scope) and the console's search."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from portal.extensions import db
from portal.links import request_id_from_token
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment, PaymentGroup
from portal.phones import e164
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


def _match(user: StaffUser, text: str) -> Any:
    """The condition for what a caller quotes: an id, a provider id, a pasted link, an
    email; otherwise any of a reference, a receipt number, a customer's first or last
    name, a phone number (read in each merchant's country), a card's last 4 digits or an
    amount."""
    if "/p/" in text:
        return PaymentRequest.id == (_request_of_link(text) or "")
    if text.startswith("pr_"):
        return PaymentRequest.id == text
    if text.startswith(("pay_", "pi_", "ch_", "sbx_", "pg_")):
        return _by_payment(
            or_(
                Payment.id == text,
                Payment.provider_payment_id == text,
                Payment.provider_charge_id == text,
                # An account-page charge is the group's at the provider: its members
                # (one payment per request) are found by the group's id or its intent.
                Payment.group_id.in_(
                    select(PaymentGroup.id).where(
                        or_(PaymentGroup.id == text, PaymentGroup.provider_payment_id == text)
                    )
                ),
            )
        )
    if "@" in text:
        return PaymentRequest.customer_email == text.lower()  # stored lower-cased
    words = _escape(text.lower())
    conditions = [
        PaymentRequest.reference == text,
        PaymentRequest.customer_reference == text,
        PaymentRequest.order_reference == text,
        func.lower(PaymentRequest.customer_name).like(f"{words}%", escape="\\"),
        func.lower(PaymentRequest.customer_name).like(f"% {words}%", escape="\\"),
        _by_payment(Payment.receipt_number == _receipt_number(text)),
        *_phone_conditions(user, text),
    ]
    if re.fullmatch(r"\d{4}", text):
        conditions.append(_by_payment(Payment.card_last4 == text))
    amount = _amount(text)
    if amount is not None:
        conditions += [PaymentRequest.amount == amount, _by_payment(Payment.amount == amount)]
    return or_(*conditions)


def _by_payment(condition: Any) -> Any:
    return PaymentRequest.id.in_(select(Payment.request_id).where(condition))


def _request_of_link(text: str) -> str | None:
    """The request a pasted link names: its verified token, else its public id."""
    token = text.split("/p/", 1)[1].split("/", 1)[0].split("?", 1)[0].strip()
    found = request_id_from_token(token)
    if found is None and re.fullmatch(r"pr_[A-Za-z0-9]+(\..*)?", token):
        found = token.split(".", 1)[0]  # a link cut short: the id is still in it
    return found


def _receipt_number(text: str) -> str:
    """``R-000123`` as printed, or its number alone (``123``)."""
    return f"R-{int(text):06d}" if text.isdigit() and len(text) <= 9 else text.upper()


def _phone_conditions(user: StaffUser, text: str) -> list[Any]:
    """The number as each merchant's country reads it (``0470 12 34 56`` is Belgian for a
    Belgian merchant, Dutch for a Dutch one); an international one (``+32…``) as is."""
    digits = re.sub(r"[\s\-./()]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not (digits.lstrip("+").isdigit() and len(digits) >= 8):
        return []
    countries = select(Merchant.country, Merchant.id)
    if user.merchant_ids:
        countries = countries.where(Merchant.id.in_(user.merchant_ids))
    by_country: dict[str, list[str]] = {}
    for country, merchant_id in db.session.execute(countries):
        by_country.setdefault(country, []).append(merchant_id)
    conditions = []
    for country, merchant_ids in by_country.items():
        number = e164(digits, country)
        if number:
            conditions.append(
                (PaymentRequest.customer_phone == number)
                & PaymentRequest.merchant_id.in_(merchant_ids)
            )
    return conditions


def _amount(text: str) -> int | None:
    """What was typed as an amount in minor units of a two-decimal currency: ``12,50``,
    ``€ 1.234,56``, ``1 234.56``, ``12``; None when it is not one."""
    cleaned = re.sub(r"[\s\u00a0\u202f€$£]|EUR|USD|GBP", "", text, flags=re.IGNORECASE)
    found = re.fullmatch(r"(\d{1,3}(?:[.,]\d{3})*|\d+)(?:[.,](\d{1,2}))?", cleaned)
    if found is None or len(cleaned) > 15:
        return None
    whole = re.sub(r"[.,]", "", found.group(1))
    cents = (found.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(cents)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(user: StaffUser, q: SearchQuery, limit: int = 50) -> list[PaymentRequest]:
    query = scoped(user, select(PaymentRequest))
    if q.text.strip():
        query = query.where(_match(user, q.text.strip()))
    if q.status:
        query = query.where(PaymentRequest.status == q.status)
    if q.date_from:
        query = query.where(PaymentRequest.created_at >= _start(q.date_from))
    if q.date_to:
        query = query.where(PaymentRequest.created_at < _start(q.date_to + timedelta(days=1)))
    return list(db.session.scalars(query.order_by(PaymentRequest.created_at.desc()).limit(limit)))


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)
