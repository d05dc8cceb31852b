"""What each Stripe event means for the portal: a plain function per type.

Each function adds and flushes; the webhook view commits once for the event id and
everything the event changed.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import or_, select

from portal.extensions import db
from portal.merchants.models import Merchant
from portal.payments.models import Payment
from portal.payments.refunds import record_provider_refunds
from portal.payments.services import apply_provider_payment, flag, lock_payment_and_request
from portal.providers.base import ProviderError, get_provider

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
    _, payment = lock_payment_and_request(payment.id)
    flag(payment, reason)
    db.session.flush()


def _intent_state(kind: str, obj: dict[str, Any], payment: Payment) -> Any:
    from portal.providers.stripe import state_from_intent

    state = state_from_intent(obj)
    if kind == "payment_intent.payment_failed":
        state.status = "failed"
    elif kind == "payment_intent.succeeded" and not state.card_last4 and state.method_type is None:
        # Stripe's events name the charge by id only: ask for it, so the receipt can say
        # which card or method paid. Without an answer the payment still settles.
        try:
            fetched = get_provider("stripe").retrieve(payment)
        except ProviderError as exc:
            log.warning("payment %s: charge details unavailable: %s", payment.id, exc)
        else:
            for attr in ("charge_id", "method_type", "card_brand", "card_last4"):
                setattr(state, attr, getattr(state, attr) or getattr(fetched, attr))
    return state


def handle_event(event: dict[str, Any]) -> str:
    """Apply one verified event; returns a short outcome for the log."""
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
        state = _intent_state(kind, obj, payment)
        outcome = apply_provider_payment(payment.id, state, source=f"webhook:{event['id']}")
        return f"{state.status}: {outcome}"
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
