"""Refunds: to the original payment method only, never more than what remains.

Three ways money goes back, one booking function for all of them:

- the merchant asks (API, support console): :func:`refund_payment`;
- the provider's dashboard did it, and its event says so: :func:`record_provider_refunds`;
- the portal itself gives back money it could not apply (a stale tab paid a
  replaced attempt, a request already paid, void or expired): the
  ``refund_unapplied`` job.

Each refund writes ``payment.refunded`` with what it undoes on the statement
lines, and queues the customer's refund notice. These functions add and flush;
their caller commits.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from sqlalchemy import select, text

from portal.errors import ApiError, Conflict, Invalid, NotFound
from portal.extensions import db
from portal.jobs.queue import job_handler
from portal.merchants.models import Merchant
from portal.payments.booking import REFUNDABLE, book_refund, note_provider_refunds
from portal.payments.models import Payment, Refund
from portal.payments.services import (
    apply_provider_payment,
    lock_payment,
    lock_payment_and_request,
    lock_request,
)
from portal.providers.base import ProviderError, get_provider
from portal.states import PaymentStatus, RefundSource

log = logging.getLogger(__name__)


def refund_payment(
    merchant: Merchant,
    payment_id: str,
    amount: int | None = None,
    reason: str | None = None,
    source: RefundSource = RefundSource.MERCHANT,
) -> Refund:
    """Refund all (``amount`` None) or part of what remains.

    The provider is asked without the request's row lock (PostgreSQL): only refunds of
    this payment wait, on a lock of their own, so the customer's pages, the webhooks and
    the other payments of the request go on while the provider thinks."""
    request_id = db.session.scalar(
        select(Payment.request_id).where(
            Payment.id == payment_id, Payment.merchant_id == merchant.id
        )
    )
    if request_id is None:
        raise NotFound("payment")
    payment = _refunds_of(request_id, payment_id)
    if payment.status not in REFUNDABLE or not payment.applied:
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
    pr, payment = lock_request(request_id), lock_payment(payment_id)
    return book_refund(pr, payment, amount, provider_id, reason, source)


def _refunds_of(request_id: str, payment_id: str) -> Payment:
    """The payment, read fresh, with the right to change what it has refunded: on
    PostgreSQL a transaction-scoped advisory lock per payment (every path that books a
    refund takes it first, before any row lock); on SQLite, whose writers go one at a
    time anyway, the rows themselves."""
    if db.session.get_bind().dialect.name != "postgresql":
        lock_request(request_id)
        return lock_payment(payment_id)
    serialize_refunds(payment_id)
    return db.session.scalars(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    ).one()


def serialize_refunds(payment_id: str) -> None:
    """Wait for any other refund of this payment to end (PostgreSQL; a no-op on SQLite)."""
    if db.session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"refund:{payment_id}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def record_provider_refunds(payment_id: str, total_refunded: int) -> Refund | None:
    """A refund made outside the portal (the provider's dashboard): book the difference,
    now or, when the payment's success has not arrived yet, with it."""
    serialize_refunds(payment_id)  # a refund of ours still waiting for the provider ends first
    _, payment = lock_payment_and_request(payment_id)
    return note_provider_refunds(payment, total_refunded)


@job_handler("refund_unapplied")
def refund_unapplied(payload: dict[str, Any]) -> None:
    """Give back money the portal could not apply (its reason is the payment's refund_due).
    The provider's idempotency key makes a retried job refund once."""
    serialize_refunds(payload["payment_id"])
    pr, payment = lock_payment_and_request(payload["payment_id"])
    if payment.applied or not payment.refund_due or payment.status not in REFUNDABLE:
        return
    amount = payment.amount - payment.amount_refunded
    provider_id = get_provider(payment.provider).refund(
        payment, amount, idempotency_key=f"portal-auto-refund-{payment.id}"
    )  # ProviderError: the job is retried later
    reason = payment.refund_due
    payment.refund_due = None
    book_refund(pr, payment, amount, provider_id, reason, RefundSource.AUTOMATIC)
    log.info("payment %s: %s refunded automatically (%s)", payment.id, amount, reason)


@job_handler("cancel_attempt")
def cancel_attempt(payload: dict[str, Any]) -> None:
    """Cancel at the provider an attempt the portal closed (another payment settled the
    request first); should the provider say it was paid, the money is applied or refunded."""
    payment = db.session.get(Payment, payload["payment_id"])
    if payment is None or not payment.provider_payment_id:
        return
    state = get_provider(payment.provider).cancel(payment)  # ProviderError: retried
    if state.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING):
        apply_provider_payment(payment.id, state, source="cancel")
