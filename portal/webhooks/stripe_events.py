"""What each Stripe event means for the portal: a plain function per type."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import or_, select

from portal.extensions import db
from portal.merchants.models import Merchant
from portal.payments.models import Payment
from portal.payments.refunds import record_provider_refunds
from portal.payments.services import apply_provider_payment, lock_payment

log = logging.getLogger(__name__)

INTENT_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.processing",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
}


def _payment_for(intent_id: str | None, charge_id: str | None = None) -> Payment | None:
    conditions = []
    if intent_id:
        conditions.append(Payment.provider_payment_id == intent_id)
    if charge_id:
        conditions.append(Payment.provider_charge_id == charge_id)
    if not conditions:
        return None
    return db.session.scalars(select(Payment).where(or_(*conditions))).first()


def _account_matches(payment: Payment, account: str | None) -> bool:
    """A Connect event must come from the merchant's own connected account."""
    merchant = db.session.get(Merchant, payment.merchant_id)
    return (merchant.stripe_account or None) == (account or None)


def _flag(payment: Payment, reason: str) -> None:
    payment = lock_payment(payment.id)
    payment.flagged = True
    payment.flagged_reason = reason[:300]
    db.session.commit()
    log.warning("payment %s flagged: %s", payment.id, reason)


def handle_event(event: dict[str, Any]) -> str:
    """Apply one verified event; returns a short outcome for the log."""
    from portal.providers.stripe import state_from_intent

    kind = event["type"]
    obj = event["data"]["object"]
    account = event.get("account")
    if kind in INTENT_EVENTS:
        payment = _payment_for(obj.get("id"))
        if payment is None:
            return "unknown payment intent"
        if not _account_matches(payment, account):
            _flag(payment, f"{kind} from account {account!r}, not the merchant's")
            return "account mismatch"
        link = (obj.get("metadata") or {}).get("payment_request_id")
        if link != payment.request_id:
            _flag(payment, f"{kind} names request {link!r}, expected {payment.request_id}")
            return "request mismatch"
        state = state_from_intent(obj)
        if kind == "payment_intent.payment_failed":
            state.status = "failed"
        apply_provider_payment(payment.id, state, source=f"webhook:{event['id']}")
        return f"applied {state.status}"
    if kind == "charge.refunded":
        payment = _payment_for(obj.get("payment_intent"), obj.get("id"))
        if payment is None:
            return "unknown charge"
        record_provider_refunds(payment.id, int(obj.get("amount_refunded") or 0))
        return "refunds recorded"
    if kind == "charge.dispute.created":
        payment = _payment_for(obj.get("payment_intent"), obj.get("charge"))
        if payment is None:
            return "unknown charge"
        _flag(payment, f"dispute opened ({obj.get('reason') or 'no reason given'})")
        return "dispute flagged"
    return "ignored"
