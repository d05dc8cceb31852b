"""Refunds: to the original payment method only, never more than what remains."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from sqlalchemy import select

from portal import validation as v
from portal.db_types import isoformat
from portal.errors import ApiError, Conflict, Invalid, NotFound
from portal.extensions import db
from portal.ledger.services import record_event
from portal.merchants.models import Merchant
from portal.payments.models import Payment, Refund
from portal.payments.services import lock_payment, lock_request
from portal.providers.base import ProviderError, get_provider
from portal.states import PaymentStatus, transition

REFUNDABLE = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED)


def _apply(
    payment: Payment, amount: int, provider_refund_id: str | None, reason: str | None
) -> Refund:
    """Book a refund on the locked payment and request, with its event (no commit)."""
    pr = payment.request
    payment.amount_refunded += amount
    transition(
        payment,
        PaymentStatus.REFUNDED
        if payment.amount_refunded >= payment.amount
        else PaymentStatus.PARTIALLY_REFUNDED,
    )
    pr.amount_refunded += amount
    refund = Refund(
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        amount=amount,
        currency=payment.currency,
        status="succeeded",
        provider_refund_id=provider_refund_id,
        reason=reason,
    )
    db.session.add(refund)
    db.session.flush()
    record_event(
        "payment.refunded",
        pr,
        payment,
        extra={"refund": {"id": refund.id, "amount": amount, "currency": refund.currency}},
    )
    return refund


def refund_payment(
    merchant: Merchant, payment_id: str, amount: int | None = None, reason: str | None = None
) -> Refund:
    """Refund all (``amount`` None) or part of what remains; the caller commits."""
    request_id = db.session.scalar(
        select(Payment.request_id).where(
            Payment.id == payment_id, Payment.merchant_id == merchant.id
        )
    )
    if request_id is None:
        raise NotFound("payment")
    lock_request(request_id)
    payment = lock_payment(payment_id)
    if payment.status not in REFUNDABLE:
        raise Conflict("payment_not_refundable", f"A {payment.status} payment cannot be refunded.")
    remaining = payment.amount - payment.amount_refunded
    amount = remaining if amount is None else amount
    if amount > remaining:
        raise Invalid(
            "amount_exceeds_refundable",
            f"At most {remaining} (minor units) remains to refund on this payment.",
            "amount",
        )
    try:
        provider_id = get_provider(payment.provider).refund(
            payment,
            amount,
            idempotency_key=f"portal-refund-{payment.id}-{payment.amount_refunded}-{amount}",
        )
    except ProviderError as exc:
        raise ApiError(
            502, "provider_error", f"The payment provider refused the refund: {exc}"
        ) from None
    return _apply(payment, amount, provider_id, reason)


def record_provider_refunds(payment_id: str, total_refunded: int) -> Refund | None:
    """A refund made outside the portal (the provider's dashboard): book the difference. Commits."""
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        return None
    lock_request(payment.request_id)
    payment = lock_payment(payment_id)
    missing = min(total_refunded, payment.amount) - payment.amount_refunded
    refund = None
    if missing > 0 and payment.status in REFUNDABLE:
        refund = _apply(payment, missing, None, "refunded at the provider")
    db.session.commit()
    return refund


def refund_json(refund: Refund) -> dict[str, Any]:
    payment = refund.payment
    return {
        "id": refund.id,
        "object": "refund",
        "payment_id": refund.payment_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "payment_status": payment.status,
        "payment_amount_refunded": payment.amount_refunded,
        "created_at": isoformat(refund.created_at),
    }


def register_api() -> None:
    """``POST /api/v1/payments/{id}/refunds`` on the API blueprint."""
    from portal.api.openapi import (
        DATETIME,
        EXTRA_PATHS,
        EXTRA_SCHEMAS,
        IDEMPOTENCY,
        INT,
        STR,
        json_content,
        nullable,
        operation,
        path_param,
        record,
        ref,
    )
    from portal.api.views import bp, idempotent, json_body

    @bp.post("/payments/<payment_id>/refunds")
    def create_refund(payment_id: str) -> Response:
        body = json_body()
        v.no_unknown_fields(body, {"amount", "reason"})
        amount = v.as_amount(body["amount"], "amount") if body.get("amount") is not None else None
        reason = v.opt_string(body, "reason", "reason", 300)

        def produce() -> tuple[int, dict[str, Any]]:
            refund = refund_payment(g.merchant, payment_id, amount, reason)
            return 201, refund_json(refund)

        return idempotent(produce, body)

    properties = {
        "id": {**STR, "pattern": "^re_"},
        "object": {"const": "refund"},
        "payment_id": {**STR, "pattern": "^pay_"},
        "amount": INT,
        "currency": STR,
        "status": {"type": "string", "enum": ["succeeded"]},
        "payment_status": {"type": "string", "enum": ["partially_refunded", "refunded"]},
        "payment_amount_refunded": INT,
        "created_at": nullable(DATETIME),
    }
    EXTRA_SCHEMAS["Refund"] = record(properties)
    EXTRA_PATHS["/payments/{payment_id}/refunds"] = {
        "post": operation(
            "createRefund",
            "Refund a payment, fully (no amount) or partly, to its original payment method.",
            {"201": json_content(ref("Refund"), "Refunded.")},
            body={
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "amount": {"type": "integer", "minimum": 1, "description": "Minor units."},
                    "reason": {"type": "string", "maxLength": 300},
                },
            },
            params=[path_param("payment_id", "A payment id (pay_…)."), IDEMPOTENCY],
        )
    }


register_api()
