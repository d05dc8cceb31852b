"""Demo data for ``make run``: the demo merchant, its API key and one open link per kind.

``flask demo`` creates what is missing and reuses the rest: a link still open and
unpaid is reused; one that was paid (even in part), voided or has expired is left as
it is, and a fresh open link of that kind is made beside it. The start page
(``portal/devtools``) lists both, read-only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from portal.credentials import hash_password, totp_uri, verify_password
from portal.db_types import utcnow
from portal.extensions import db
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackEndpoint
from portal.links import link_url
from portal.merchant_console.models import MerchantUser
from portal.merchants.models import ApiKey, Merchant
from portal.merchants.services import create_api_key, create_merchant, hash_key
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import create_payment_request, is_expired
from portal.providers.base import get_provider
from portal.states import RequestStatus

DEMO_NAME = "Demo Corner Shop"
# Development only: `flask demo` refuses to run in production.
DEMO_API_KEY = "sk_portal_demo_do_not_use_in_production"
# The signing secret of the demo merchant's ledger endpoint (`flask demo --ledger URL`):
# public like the demo key, so that docs/callbacks.md's commands run as written.
DEMO_LEDGER_SECRET = "whsec_ZGVtbyBsZWRnZXIgc2VjcmV0OiBkZXZlbG9wIG9ubHk="  # noqa: S105
# The demo merchant's console owner (/merchant/), public like the demo key: development only.
DEMO_OWNER_EMAIL = "owner@corner-shop.example"
DEMO_OWNER_PASSWORD = "demo-owner-password"  # noqa: S105
DEMO_OWNER_TOTP = "DEMOOWNERTOTPKEYDEVELOPONLY23456"


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


def demo_merchant() -> Merchant | None:
    return db.session.scalars(select(Merchant).where(Merchant.name == DEMO_NAME)).first()


def _reusable(merchant: Merchant, reference: str) -> PaymentRequest | None:
    """The newest demo link with this reference that is still open and unpaid."""
    pr = db.session.scalars(
        select(PaymentRequest)
        .where(
            PaymentRequest.merchant_id == merchant.id,
            PaymentRequest.reference == reference,
            PaymentRequest.status == RequestStatus.OPEN,
            PaymentRequest.amount_paid == 0,
        )
        .order_by(PaymentRequest.created_at.desc())
    ).first()
    return None if pr is None or is_expired(pr) else pr


def ensure_demo() -> dict[str, Any]:
    """The demo merchant, key and one open link per kind, created only where missing.

    ``replaced`` names the kinds whose previous link was paid, voided or expired and
    got a fresh one."""
    merchant = demo_merchant()
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
    ensure_demo_owner(merchant)
    links, replaced = {}, []
    for kind, body in _demo_bodies().items():
        pr = _reusable(merchant, body["reference"])
        if pr is None:
            earlier = db.session.scalars(
                select(PaymentRequest.id).where(
                    PaymentRequest.merchant_id == merchant.id,
                    PaymentRequest.reference == body["reference"],
                )
            ).first()
            if earlier is not None:
                replaced.append(kind)
            pr = create_payment_request(merchant, body)
        links[kind] = link_url(pr.id)
    db.session.flush()
    return {
        "merchant_id": merchant.id,
        "merchant_name": merchant.display_name,
        "api_key": DEMO_API_KEY,
        "links": links,
        "replaced": replaced,
        "owner": {
            "email": DEMO_OWNER_EMAIL,
            "password": DEMO_OWNER_PASSWORD,
            "totp_secret": DEMO_OWNER_TOTP,
            "totp_uri": totp_uri(DEMO_OWNER_TOTP, DEMO_OWNER_EMAIL, DEMO_NAME),
        },
    }


def ensure_demo_owner(merchant: Merchant) -> MerchantUser:
    """The demo merchant's console owner, signing in with the demo password and TOTP key."""
    user = db.session.scalars(
        select(MerchantUser).where(MerchantUser.email == DEMO_OWNER_EMAIL)
    ).first()
    if user is None:
        user = MerchantUser(merchant_id=merchant.id, email=DEMO_OWNER_EMAIL, role="owner",
                            refund_limit=0, failed_logins=0, activated_at=utcnow())  # fmt: skip
        db.session.add(user)
    if not verify_password(user.password_hash, DEMO_OWNER_PASSWORD):
        user.password_hash = hash_password(DEMO_OWNER_PASSWORD)
    user.totp_secret, user.disabled_at = DEMO_OWNER_TOTP, None
    db.session.flush()
    return user


def ensure_demo_ledger(url: str) -> CallbackEndpoint:
    """The demo merchant's callback endpoint at ``url``, added (or re-enabled) and signing
    with :data:`DEMO_LEDGER_SECRET`. Raises ``ApiError`` for a URL the callback rules
    refuse (http or loopback without PORTAL_ALLOW_PRIVATE_CALLBACKS); every send checks
    the URL again, as for any endpoint."""

    merchant = demo_merchant()
    if merchant is None:
        raise RuntimeError("no demo merchant: ensure_demo() first")
    endpoint = db.session.scalars(
        select(CallbackEndpoint).where(
            CallbackEndpoint.merchant_id == merchant.id, CallbackEndpoint.url == url
        )
    ).first() or add_endpoint(merchant.id, url)
    endpoint.secret = DEMO_LEDGER_SECRET
    endpoint.previous_secret = endpoint.previous_secret_expires_at = None
    endpoint.enabled, endpoint.disabled_reason = True, None
    db.session.flush()
    return endpoint


def _link(pr: PaymentRequest) -> dict[str, Any]:
    return {
        "id": pr.id,
        "kind": pr.kind,
        "status": RequestStatus.EXPIRED.value if is_expired(pr) else pr.status,
        "reference": pr.reference,
        "description": pr.description,
        "customer": pr.customer_name,
        "locale": pr.customer_locale,
        "currency": pr.currency,
        "amount": pr.amount,
        "amount_paid": pr.amount_paid,
        "created_at": pr.created_at,
        "url": link_url(pr.id),
    }


def demo_overview(limit: int = 30) -> dict[str, Any] | None:
    """What the start page shows of the demo merchant, read-only: its newest links,
    split into the open ones and the (partly) paid ones, and its ledger endpoints.
    None before ``flask demo`` ran."""
    merchant = demo_merchant()
    if merchant is None:
        return None
    rows = db.session.scalars(
        select(PaymentRequest)
        .where(PaymentRequest.merchant_id == merchant.id)
        .order_by(PaymentRequest.created_at.desc(), PaymentRequest.id)
        .limit(limit)
    ).all()
    links = [_link(pr) for pr in rows]
    paid = (RequestStatus.PAID, RequestStatus.PARTIALLY_PAID)
    endpoints = db.session.scalars(
        select(CallbackEndpoint)
        .where(CallbackEndpoint.merchant_id == merchant.id)
        .order_by(CallbackEndpoint.created_at)
    ).all()
    return {
        "merchant_id": merchant.id,
        "merchant_name": merchant.display_name,
        "api_key": DEMO_API_KEY,
        "open": [link for link in links if link["status"] == RequestStatus.OPEN],
        "paid": [link for link in links if link["status"] in paid],
        "closed": [link for link in links if link["status"] in ("void", "expired")],
        "endpoints": [
            {
                "id": e.id,
                "url": e.url,
                "enabled": e.enabled,
                "demo_secret": e.secret == DEMO_LEDGER_SECRET,
            }
            for e in endpoints
        ],
    }


def test_cards() -> tuple[tuple[str, str], ...]:
    """The configured provider's test cards (the sandbox's; none for a real provider)."""
    return get_provider().test_cards
