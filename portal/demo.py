"""Demo data for ``make run``: created once, reused on every later run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from portal.db_types import utcnow
from portal.extensions import db
from portal.links import link_url
from portal.merchants.models import ApiKey, Merchant
from portal.merchants.services import create_api_key, create_merchant, hash_key
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import create_payment_request, is_expired
from portal.states import RequestStatus

DEMO_NAME = "Demo Corner Shop"
# Development only: `flask demo` refuses to run in production.
DEMO_API_KEY = "sk_portal_demo_do_not_use_in_production"


def _demo_bodies() -> dict[str, dict[str, Any]]:
    today = utcnow().date()
    return {
        "statement": {
            "kind": "statement",
            "currency": "EUR",
            "amount": 12840,
            "reference": "DEMO-STATEMENT",
            "description": "Account statement",
            "due_date": (today + timedelta(days=14)).isoformat(),
            "customer": {
                "name": "Camille Martin",
                "email": "camille@example.com",
                "locale": "fr",
                "reference": "CUST-001",
            },
            "allow_partial": True,
            "statement": {
                "period_start": (today - timedelta(days=30)).isoformat(),
                "period_end": today.isoformat(),
                "balance": 12840,
                "lines": [
                    {
                        "date": (today - timedelta(days=25)).isoformat(),
                        "description": "Groceries",
                        "amount": 4590,
                        "reference": "T-1001",
                    },
                    {
                        "date": (today - timedelta(days=12)).isoformat(),
                        "description": "Bakery",
                        "amount": 1250,
                        "reference": "T-1002",
                    },
                    {
                        "date": (today - timedelta(days=3)).isoformat(),
                        "description": "Wine and cheese",
                        "amount": 7000,
                        "reference": "T-1003",
                    },
                ],
            },
        },
        "wallet_topup": {
            "kind": "wallet_topup",
            "currency": "EUR",
            "reference": "DEMO-TOPUP",
            "description": "Top up your shop wallet",
            "customer": {
                "name": "Daan de Vries",
                "email": "daan@example.com",
                "locale": "nl",
                "reference": "CUST-002",
            },
            "wallet": {"min_amount": 500, "max_amount": 20000, "suggested": [1000, 2500, 5000]},
        },
        "order_deposit": {
            "kind": "order_deposit",
            "currency": "EUR",
            "amount": 5000,
            "reference": "DEMO-DEPOSIT",
            "description": "Deposit for your birthday cake order",
            "customer": {
                "name": "Alex Smith",
                "email": "alex@example.com",
                "locale": "en",
                "reference": "CUST-003",
            },
            "allow_full_payment": True,
            "order": {
                "reference": "ORD-2042",
                "lines": [
                    {"description": "Birthday cake (24 parts)", "quantity": 1, "unit_amount": 8500},
                    {"description": "Candles", "quantity": 3, "unit_amount": 250},
                ],
            },
        },
    }


def ensure_demo() -> dict[str, Any]:
    """The demo merchant, key and one open link per kind, created only where missing."""
    merchant = db.session.scalars(select(Merchant).where(Merchant.name == DEMO_NAME)).first()
    if merchant is None:
        merchant = create_merchant(
            DEMO_NAME,
            "EUR",
            default_ceiling=current_app.config["PORTAL_DEFAULT_CEILING"],
            locale="en",
            display_name="Corner Shop",
            support_email="help@corner-shop.example",
        )
        merchant.support_phone = "+32 2 555 01 23"
    if (
        db.session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(DEMO_API_KEY))).first()
        is None
    ):
        create_api_key(merchant, label="demo", secret=DEMO_API_KEY)
    links = {}
    for kind, body in _demo_bodies().items():
        pr = db.session.scalars(
            select(PaymentRequest)
            .where(
                PaymentRequest.merchant_id == merchant.id,
                PaymentRequest.reference == body["reference"],
                PaymentRequest.status == RequestStatus.OPEN,
                PaymentRequest.amount_paid == 0,
            )
            .order_by(PaymentRequest.created_at.desc())
        ).first()
        if pr is None or is_expired(pr):
            pr = create_payment_request(merchant, body)
        links[kind] = link_url(pr.id)
    db.session.commit()
    return {
        "merchant_id": merchant.id,
        "merchant_name": merchant.display_name,
        "api_key": DEMO_API_KEY,
        "links": links,
    }
