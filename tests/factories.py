"""Factories that build rows through the real services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portal.extensions import db
from portal.merchants.models import Merchant
from portal.merchants.services import create_api_key, create_merchant
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import create_payment_request


@dataclass
class MerchantWithKey:
    merchant: Merchant
    api_key: str

    @property
    def id(self) -> str:
        return self.merchant.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def make_merchant(
    name: str = "Test Shop", currency: str = "EUR", ceiling: str | None = None, **kwargs: Any
) -> MerchantWithKey:
    merchant = create_merchant(name, currency, ceiling=ceiling, **kwargs)
    secret = create_api_key(merchant, label="test")
    db.session.commit()
    return MerchantWithKey(merchant, secret)


def statement_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "statement",
        "currency": "EUR",
        "amount": 12500,
        "reference": "STMT-1",
        "customer": {
            "name": "Jan Peeters",
            "email": "jan@example.com",
            "locale": "nl",
            "reference": "C-1",
        },
        "statement": {
            "period_start": "2026-10-01",
            "period_end": "2026-10-31",
            "balance": 15000,
            "lines": [
                {"date": "2026-10-03", "description": "Bread", "amount": 5000, "reference": "L1"},
                {"date": "2026-10-20", "description": "Wine", "amount": 10000, "reference": "L2"},
            ],
        },
    }
    body.update(overrides)
    return body


def wallet_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "wallet_topup",
        "currency": "EUR",
        "reference": "TOPUP-1",
        "customer": {"name": "Marie Dubois", "locale": "fr", "reference": "C-2"},
        "wallet": {"min_amount": 500, "max_amount": 50000, "suggested": [1000, 2000, 5000]},
    }
    body.update(overrides)
    return body


def deposit_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "order_deposit",
        "currency": "EUR",
        "amount": 3000,
        "reference": "DEP-1",
        "customer": {"name": "Alex Smith", "email": "alex@example.com", "reference": "C-3"},
        "order": {
            "reference": "ORD-1",
            "total": 10000,
            "lines": [
                {"description": "Cake", "quantity": 2, "unit_amount": 4000},
                {"description": "Delivery", "quantity": 1, "unit_amount": 2000},
            ],
        },
    }
    body.update(overrides)
    return body


def make_request(m: MerchantWithKey, body: dict[str, Any] | None = None) -> PaymentRequest:
    pr = create_payment_request(m.merchant, body or statement_body())
    db.session.commit()
    return pr


def make_stuck_payments(m: MerchantWithKey, count: int) -> list[str]:
    """``count`` requests, each with a Stripe attempt in ``processing`` that nobody heard
    about for an hour (a lost webhook): what the reconciliation asks Stripe about."""
    from datetime import timedelta

    from portal.db_types import utcnow
    from portal.payments.services import start_payment

    ids = []
    for n in range(count):
        payment = start_payment(make_request(m, statement_body(reference=f"STUCK-{n}")), None)
        payment.provider = "stripe"
        payment.provider_payment_id = f"pi_stuck_{payment.id}"
        payment.status = "processing"
        payment.updated_at = utcnow() - timedelta(hours=1)
        db.session.commit()
        ids.append(payment.id)
    return ids
