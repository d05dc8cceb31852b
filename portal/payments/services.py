"""The pay flow and THE fulfilment function.

Lock order everywhere: payment request row, then payment row, then (through
``record_event``) the merchant row — so concurrent calls never deadlock.
Every status change goes through :mod:`portal.states`, and its events and
jobs are written in the same transaction.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import select, update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.queue import MAIL_ATTEMPTS, enqueue
from portal.ledger.services import record_event
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import is_expired
from portal.payments.models import Payment
from portal.providers.base import ProviderPayment, get_provider
from portal.states import Kind, PaymentStatus, RequestStatus, can_transition, transition

if TYPE_CHECKING:
    from portal.providers.circuit import ProviderGuard

log = logging.getLogger(__name__)

OPEN_ATTEMPT = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
PAYABLE = (RequestStatus.OPEN, RequestStatus.PARTIALLY_PAID)


class PaymentRefused(Exception):
    """The customer cannot pay this (amount or state); ``code`` picks the message shown."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


def lock_request(request_id: str) -> PaymentRequest:
    return db.session.scalars(
        select(PaymentRequest)
        .where(PaymentRequest.id == request_id)
        .with_for_update(of=PaymentRequest)
        .execution_options(populate_existing=True)
    ).one()


def lock_payment(payment_id: str) -> Payment:
    return db.session.scalars(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def payable_range(pr: PaymentRequest, *, full_order: bool = False) -> tuple[int, int] | None:
    """(minimum, maximum) the customer may pay now, or None when nothing is payable."""
    ceiling = pr.merchant.ceiling
    if pr.kind == Kind.WALLET_TOPUP and pr.amount is None:
        if pr.amount_paid > 0:
            return None
        return pr.wallet_min or 1, min(pr.wallet_max or ceiling, ceiling)
    if full_order and pr.kind == Kind.ORDER_DEPOSIT and pr.allow_full_payment:
        remaining = (pr.order_total or 0) - pr.amount_paid
        return (remaining, min(remaining, ceiling)) if remaining > 0 else None
    due = pr.amount_due or 0
    if due <= 0:
        return None
    if pr.allow_partial:
        return 1, min(due, ceiling)
    return due, min(due, ceiling)


def decide_amount(pr: PaymentRequest, asked: int | None, *, full_order: bool = False) -> int:
    """The amount to charge, from the database; ``asked`` only chooses within the rules."""
    bounds = payable_range(pr, full_order=full_order)
    if bounds is None:
        raise PaymentRefused("nothing_due")
    low, high = bounds
    if low > high:
        raise PaymentRefused("amount_exceeds_ceiling")
    if asked is None:
        if pr.kind == Kind.WALLET_TOPUP and pr.amount is None:
            raise PaymentRefused("amount_required")
        return high  # everything that is due (a partial payment is the customer's choice)
    if low == high:
        if asked != low:
            raise PaymentRefused("amount_fixed")
        return low
    if asked < low:
        raise PaymentRefused("amount_below_minimum")
    if asked > high:
        raise PaymentRefused("amount_above_maximum")
    return asked


def start_payment(
    pr: PaymentRequest,
    amount: int | None,
    *,
    locale: str | None = None,
    receipt_email: str | None = None,
    full_order: bool = False,
) -> Payment:
    """Open (or reuse) the payment attempt for ``pr``; commits.

    The request row is locked, so a double submit or a second tab waits for
    the first and then reuses its attempt instead of creating another.
    """
    pr = lock_request(pr.id)
    if pr.status not in PAYABLE or is_expired(pr):
        db.session.rollback()
        raise PaymentRefused("not_payable")
    try:
        charge = decide_amount(pr, amount, full_order=full_order)
    except PaymentRefused:
        db.session.rollback()
        raise
    provider = current_app.config["PORTAL_PAYMENT_PROVIDER"]
    open_attempts = db.session.scalars(
        select(Payment)
        .where(Payment.request_id == pr.id, Payment.status.in_(OPEN_ATTEMPT))
        .order_by(Payment.created_at.desc())
        .with_for_update()
    ).all()
    for attempt in open_attempts:
        if attempt.amount == charge and attempt.provider == provider:
            if receipt_email and not attempt.receipt_email:
                attempt.receipt_email = receipt_email
            if locale:
                attempt.locale = locale
            db.session.commit()
            return attempt
        if attempt.status == PaymentStatus.PROCESSING:
            db.session.rollback()
            raise PaymentRefused("payment_in_progress")
        transition(attempt, PaymentStatus.CANCELED)
    payment = Payment(
        request_id=pr.id,
        merchant_id=pr.merchant_id,
        amount=charge,
        currency=pr.currency,
        status=PaymentStatus.PENDING,
        provider=provider,
        receipt_email=receipt_email or pr.customer_email,
        locale=locale or pr.customer_locale,
        provider_data={},
    )
    db.session.add(payment)
    db.session.commit()
    return payment


def prepare_payment(payment: Payment) -> dict[str, Any]:
    """Ask the payment's provider to set up its side; commits any provider id it set."""
    data = get_provider(payment.provider).prepare(payment, payment.request)
    db.session.commit()
    return data


def _receipt_number() -> str:
    return f"R{utcnow():%Y%m%d}-{secrets.token_hex(4).upper()}"


def _copy_method(payment: Payment, state: ProviderPayment) -> None:
    for attr in ("method_type", "card_brand", "card_last4"):
        value = getattr(state, attr)
        if value:
            setattr(payment, attr, value)
    if state.provider_payment_id and not payment.provider_payment_id:
        payment.provider_payment_id = state.provider_payment_id
    if state.charge_id:
        payment.provider_charge_id = state.charge_id


def _flag(payment: Payment, reason: str) -> None:
    payment.flagged = True
    payment.flagged_reason = reason[:300]
    log.warning("payment %s flagged for support: %s", payment.id, reason)


def _mismatch(payment: Payment, state: ProviderPayment) -> str | None:
    if state.amount != payment.amount or state.currency.upper() != payment.currency:
        return (
            f"provider reports {state.amount} {state.currency.upper()}, "
            f"expected {payment.amount} {payment.currency}"
        )
    return None


def _fulfil_locked(pr: PaymentRequest, payment: Payment, state: ProviderPayment | None) -> bool:
    if payment.status not in OPEN_ATTEMPT:
        return False
    if state is not None:
        problem = _mismatch(payment, state)
        if problem:
            _flag(payment, problem)
            return False
        _copy_method(payment, state)
    transition(payment, PaymentStatus.SUCCEEDED)
    payment.succeeded_at = utcnow()
    payment.receipt_number = _receipt_number()
    pr.amount_paid += payment.amount
    became_paid = False
    if pr.status in PAYABLE:
        fully = pr.amount is None or pr.amount_paid >= pr.amount
        new = RequestStatus.PAID if fully else RequestStatus.PARTIALLY_PAID
        if new != pr.status:
            transition(pr, new)
        if new == RequestStatus.PAID:
            pr.paid_at = payment.succeeded_at
            became_paid = True
    else:
        # Money arrived for a request that is no longer payable: keep it visible.
        _flag(payment, f"paid while the request was {pr.status}: refund or settle by hand")
    record_event("payment.succeeded", pr, payment)
    if became_paid:
        record_event("payment_request.paid", pr, payment)
    enqueue("send_receipt", {"payment_id": payment.id}, max_attempts=MAIL_ATTEMPTS)
    return True


def fulfil_payment(payment_id: str, state: ProviderPayment | None = None) -> bool:
    """Record a succeeded payment exactly once; returns False when already done (commits).

    Called by the sandbox, the Stripe webhook and the return page alike.
    """
    request_id = db.session.scalar(select(Payment.request_id).where(Payment.id == payment_id))
    if request_id is None:
        raise LookupError(payment_id)
    pr = lock_request(request_id)
    payment = lock_payment(payment_id)
    done = _fulfil_locked(pr, payment, state)
    db.session.commit()
    return done


def apply_provider_payment(
    payment_id: str, state: ProviderPayment, *, source: str = "provider"
) -> Payment:
    """Bring a payment in line with what the provider says; never moves backwards (commits)."""
    request_id = db.session.scalar(select(Payment.request_id).where(Payment.id == payment_id))
    if request_id is None:
        raise LookupError(payment_id)
    pr = lock_request(request_id)
    payment = lock_payment(payment_id)
    status = state.status
    if status == PaymentStatus.SUCCEEDED:
        if payment.status in OPEN_ATTEMPT:
            _fulfil_locked(pr, payment, state)
        elif payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
            _flag(payment, f"{source}: provider reports success for a {payment.status} attempt")
    elif status == PaymentStatus.PROCESSING:
        if can_transition(payment, PaymentStatus.PROCESSING):
            _copy_method(payment, state)
            transition(payment, PaymentStatus.PROCESSING)
    elif status == PaymentStatus.FAILED:
        if can_transition(payment, PaymentStatus.FAILED):
            _copy_method(payment, state)
            payment.failure_code = state.failure_code
            payment.failure_message = state.failure_message
            transition(payment, PaymentStatus.FAILED)
            record_event("payment.failed", pr, payment)
    elif status == PaymentStatus.CANCELED:
        if can_transition(payment, PaymentStatus.CANCELED):
            transition(payment, PaymentStatus.CANCELED)
    else:  # pending / requires_action: nothing settled yet
        _copy_method(payment, state)
    db.session.commit()
    return payment


def refresh_payment(payment: Payment) -> Payment:
    """Ask the provider for the truth and apply it (return page, reconciliation)."""
    state = get_provider(payment.provider).retrieve(payment)
    return apply_provider_payment(payment.id, state, source="refresh")


def reconcile_stuck_payments(
    older_than: timedelta = timedelta(minutes=15),
    limit: int = 100,
    guard: ProviderGuard | None = None,
) -> int:
    """Ask the provider about attempts stuck in pending/processing (a lost webhook).

    Run by every worker each minute; each attempt is asked at most every
    ``older_than``, for a week. ``guard`` (the worker's time budget and circuit
    breakers) is asked before each call and told how it went; an attempt it holds
    back waits, unasked, for the next run. Returns how many were checked.
    """
    from portal.providers.base import ProviderError

    now = utcnow()
    stuck = db.session.scalars(
        select(Payment)
        .where(
            Payment.status.in_(OPEN_ATTEMPT),
            Payment.provider != "sandbox",
            Payment.provider_payment_id.is_not(None),
            Payment.updated_at < now - older_than,
            Payment.created_at > now - timedelta(days=7),
        )
        .order_by(Payment.updated_at)
        .limit(limit)
    ).all()
    checked = 0
    for payment in stuck:
        if guard is not None and not guard.allow(payment.provider):
            continue
        payment_id, provider = payment.id, payment.provider
        try:
            refresh_payment(payment)
        except ProviderError as exc:
            db.session.rollback()
            log.warning("reconciling %s failed: %s", payment_id, exc)
            if guard is not None:
                guard.failed(provider, exc)
        else:
            if guard is not None:
                guard.succeeded(provider)
        db.session.execute(
            update(Payment).where(Payment.id == payment_id).values(updated_at=utcnow())
        )
        db.session.commit()
        checked += 1
    return checked
