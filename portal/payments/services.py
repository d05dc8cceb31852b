"""The pay flow and THE settlement function.

Lock order everywhere: payment request row, then payment row, then (through
``record_event`` and the receipt sequence) the merchant row — so concurrent
calls never deadlock. Every status change goes through :mod:`portal.states`,
and its events and jobs are written in the same transaction. These functions
add and flush; the request, job or command that called them commits.

What happens to money, whatever the order things arrive in:

- An attempt is replaced (another amount, a second tab) only after the
  provider has canceled it; an attempt the provider already settled is
  applied instead, and the new one refused.
- Money the provider took is *applied* to its request when the request may
  still receive it (open or partly paid, and the amount fits in what is still
  due); otherwise it is refunded automatically (``refund_unapplied`` job), and
  the customer and the ledger are told. Money is never parked in a flag; a
  flag is only for what support must look at (an amount the provider changed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.queue import MAIL_ATTEMPTS, enqueue
from portal.ledger.services import record_event, record_events, take_numbers
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payments.booking import allocate, book_early_refunds
from portal.payments.models import Payment
from portal.providers.base import (
    CheckoutPage,
    ProviderError,
    ProviderPayment,
    Submission,
    get_provider,
)
from portal.states import (
    OPEN_ATTEMPT,
    PAYABLE,
    InvalidTransition,
    Kind,
    PaymentStatus,
    RequestStatus,
    can_transition,
    transition,
)

log = logging.getLogger(__name__)

# Why an attempt was closed by the portal (its failure_code) or why money is given back.
SUPERSEDED = "superseded"  # replaced by a newer attempt (another tab, another amount)
REQUEST_CLOSED = "request_closed"  # paid, void or expired before this money arrived
AMOUNT_DOES_NOT_FIT = "amount_does_not_fit"  # more than was still due when it arrived


class PaymentRefused(Exception):
    """The customer cannot pay this (amount or state); ``code`` picks the message shown,
    ``bounds`` (low, high, minimum) lets it state the allowed range."""

    def __init__(
        self, code: str, message: str = "", bounds: tuple[int, int, int] | None = None
    ) -> None:
        super().__init__(message or code)
        self.code = code
        self.bounds = bounds


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


def lock_payment_and_request(
    payment_id: str, request_id: str | None = None
) -> tuple[PaymentRequest, Payment]:
    """Both rows locked, in the documented order. ``request_id``: the payment's request,
    when the caller has read it already (a payment never changes request)."""
    if request_id is None:
        request_id = db.session.scalar(select(Payment.request_id).where(Payment.id == payment_id))
    if request_id is None:
        raise LookupError(payment_id)
    return lock_request(request_id), lock_payment(payment_id)


def minimum_for(merchant: Merchant, currency: str) -> int:
    """The smallest amount one payment may be: the provider's, or the merchant's if higher."""
    return max(get_provider().minimum_charge(currency), merchant.min_payment or 0)


def register_wallet_domains(domain: str) -> list[tuple[str | None, str | None]]:
    """Register ``domain`` for wallets on the platform and on every connected account:
    (account, the provider's id of the domain) for each."""
    provider = get_provider()
    accounts = db.session.scalars(
        select(Merchant.stripe_account)
        .where(Merchant.stripe_account.is_not(None))
        .order_by(Merchant.stripe_account)
    ).all()
    return [(account, provider.register_domain(domain, account)) for account in [None, *accounts]]


def test_mode() -> bool:
    """Whether the provider that serves is a stand-in (its test cards move no money)."""
    return bool(get_provider().test_cards)


def minimum_charge(pr: PaymentRequest) -> int:
    return minimum_for(pr.merchant, pr.currency)


def payable_range(pr: PaymentRequest, *, full_order: bool = False) -> tuple[int, int] | None:
    """(minimum, maximum) the customer may pay now, or None when nothing is payable."""
    ceiling = pr.merchant.ceiling
    if pr.kind == Kind.WALLET_TOPUP and pr.amount is None:
        if pr.amount_paid > 0:
            return None
        low = max(pr.wallet_min or 1, minimum_charge(pr))
        return low, min(pr.wallet_max or ceiling, ceiling)
    if full_order and pr.kind == Kind.ORDER_DEPOSIT and pr.allow_full_payment:
        remaining = (pr.order_total or 0) - pr.amount_paid
        return (remaining, min(remaining, ceiling)) if remaining > 0 else None
    due = pr.amount_due or 0
    if due <= 0:
        return None
    if pr.allow_partial:
        return min(minimum_charge(pr), due), min(due, ceiling)
    return due, min(due, ceiling)


def decide_amount(pr: PaymentRequest, asked: int | None, *, full_order: bool = False) -> int:
    """The amount to charge, from the database; ``asked`` only chooses within the rules."""
    bounds = payable_range(pr, full_order=full_order)
    if bounds is None:
        raise PaymentRefused("nothing_due")
    low, high = bounds
    minimum = minimum_charge(pr)
    detail = (low, high, minimum)
    if low > high:
        raise PaymentRefused("amount_exceeds_ceiling", bounds=detail)
    if asked is None:
        if pr.kind == Kind.WALLET_TOPUP and pr.amount is None:
            raise PaymentRefused("amount_required", bounds=detail)
        return high  # everything that is due (a partial payment is the customer's choice)
    if low == high:
        if asked != low:
            raise PaymentRefused("amount_fixed", bounds=detail)
        return low
    if asked < low:
        raise PaymentRefused("amount_below_minimum", bounds=detail)
    if asked > high:
        raise PaymentRefused("amount_above_maximum", bounds=detail)
    left = (pr.amount_due or 0) - asked
    if pr.allow_partial and 0 < left < minimum:
        # What would be left could never be paid online: pay all, or leave enough.
        raise PaymentRefused("amount_leaves_too_little", bounds=detail)
    return asked


def start_payment(
    pr: PaymentRequest,
    amount: int | None,
    *,
    locale: str | None = None,
    receipt_email: str | None = None,
    full_order: bool = False,
) -> Payment:
    """Open (or reuse) the payment attempt for ``pr``.

    The request row is locked, so a double submit or a second tab waits for
    the first and then reuses its attempt instead of creating another. An
    attempt of another amount is canceled at the provider before the new one
    exists. Raises :class:`PaymentRefused`; the caller then rolls back (what the
    provider said of the old attempt comes again by its webhook or the
    reconciliation).
    """
    pr = lock_request(pr.id)
    if pr.status not in PAYABLE or pr.is_expired() or pr.reusable:
        raise PaymentRefused("not_payable")  # (a reusable link is paid through its children)
    charge = decide_amount(pr, amount, full_order=full_order)
    provider = current_app.config["PORTAL_PAYMENT_PROVIDER"]
    for attempt in _open_attempts(pr):
        same = attempt.amount == charge and attempt.provider == provider
        same = same and attempt.group_id is None  # a share of an account-page payment
        if same and attempt.status == PaymentStatus.PENDING:
            if receipt_email and not attempt.receipt_email:
                attempt.receipt_email = receipt_email
            if locale:
                attempt.locale = locale
            db.session.flush()
            return attempt
        if attempt.status == PaymentStatus.PROCESSING:
            raise PaymentRefused("payment_in_progress")
        if not close_attempt(pr, attempt, SUPERSEDED):
            raise PaymentRefused("payment_in_progress")
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
        applied=False,
        amount_refunded=0,
    )
    db.session.add(payment)
    db.session.flush()
    return payment


def _open_attempts(pr: PaymentRequest) -> list[Payment]:
    return list(
        db.session.scalars(
            select(Payment)
            .where(Payment.request_id == pr.id, Payment.status.in_(OPEN_ATTEMPT))
            .order_by(Payment.created_at.desc())
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def close_attempt(pr: PaymentRequest, attempt: Payment, reason: str) -> bool:
    """Cancel an open attempt, at the provider first (both rows locked by the caller).

    Returns False when the provider had already settled it or is settling it: its
    state is then applied instead. Raises :class:`PaymentRefused` ("try_again") when
    the provider cannot be reached: nothing may replace an attempt that may still pay.
    """
    if attempt.provider_payment_id:
        try:
            state = get_provider(attempt.provider).cancel(attempt)
        except ProviderError as exc:
            log.warning("could not cancel %s at the provider: %s", attempt.id, exc)
            raise PaymentRefused("try_again") from None
        if state.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING):
            _apply_locked(pr, attempt, state, source="cancel")
            return False
    transition(attempt, PaymentStatus.CANCELED)
    attempt.failure_code = reason
    db.session.flush()
    return True


def prepare_payment(payment: Payment) -> dict[str, Any]:
    """Ask the payment's provider to set up its side (e.g. create the PaymentIntent).

    The provider is asked before any lock is taken; then, locked, the attempt is
    checked again: when it is no longer open (another tab replaced it, or it was
    paid meanwhile), what the provider just made is canceled and
    :class:`PaymentRefused` ("superseded") raised: the caller shows the attempt's result.
    """
    try:
        data = get_provider(payment.provider).prepare(payment, payment.request)
    except ProviderError as exc:
        log.warning("the provider could not set up %s: %s", payment.id, exc)
        raise PaymentRefused("try_again") from None
    provider_id = data.get("provider_payment_id")
    pr, payment = lock_payment_and_request(payment.id)
    if payment.status == PaymentStatus.PENDING:
        if provider_id and not payment.provider_payment_id:
            payment.provider_payment_id = provider_id
        db.session.flush()
        return data
    if provider_id and payment.status in (PaymentStatus.CANCELED, PaymentStatus.FAILED):
        payment.provider_payment_id = payment.provider_payment_id or provider_id
        try:
            state = get_provider(payment.provider).cancel(payment)
        except ProviderError as exc:
            log.warning("could not cancel %s at the provider: %s", payment.id, exc)
            raise PaymentRefused("try_again") from None
        if state.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING):
            _apply_locked(pr, payment, state, source="prepare")
    db.session.flush()
    raise PaymentRefused(SUPERSEDED)


def checkout_page(payment: Payment, step: str | None = None) -> CheckoutPage:
    """The provider's checkout page for an open attempt (its first step prepares the
    provider's side). Raises :class:`PaymentRefused`: "superseded" when the attempt is no
    longer open, "try_again" when the provider cannot be reached."""
    provider = get_provider(payment.provider)
    try:
        prepared = prepare_payment(payment) if step is None else {}
        return provider.checkout_page(payment, payment.request, step, prepared)
    except ProviderError as exc:
        log.warning("the provider could not show %s: %s", payment.id, exc)
        raise PaymentRefused("try_again") from None


def submit_checkout(payment_id: str, step: str | None, form: Mapping[str, str]) -> Submission:
    """A checkout page's form, handed to the provider under the locks: an attempt another
    tab replaced is never charged. An empty submission when it is no longer open."""
    pr, payment = lock_payment_and_request(payment_id)
    if payment.status != PaymentStatus.PENDING:
        return Submission()
    try:
        submission = get_provider(payment.provider).submit(payment, step, form)
    except ProviderError as exc:
        log.warning("the provider could not take %s: %s", payment_id, exc)
        raise PaymentRefused("try_again") from None
    if submission.state is not None:
        _apply_locked(pr, payment, submission.state, source=f"checkout:{step or 'pay'}")
    return submission


def refresh_for_customer(payment: Payment) -> None:
    """The return page asks the provider about an open attempt; when the provider does not
    answer, the page says "being processed" and the webhook will tell."""
    try:
        refresh_payment(payment)
    except ProviderError as exc:
        db.session.rollback()
        log.warning("could not ask the provider about %s: %s", payment.id, exc)


def confirm_payment(payment_id: str, details: Any, *, source: str) -> ProviderPayment | None:
    """Pay an open attempt with what the customer entered (the sandbox's card, Stripe's
    payment method), under the locks: an attempt another tab replaced is never charged.
    Returns the provider's answer, or None when the attempt was no longer open."""
    pr, payment = lock_payment_and_request(payment_id)
    if payment.status != PaymentStatus.PENDING:
        return None
    state = get_provider(payment.provider).confirm(payment, details)
    _apply_locked(pr, payment, state, source=source)
    return state


def authenticate_payment(payment_id: str, approved: bool, *, source: str) -> None:
    """The customer's answer to a 3-D Secure step of an open attempt."""
    pr, payment = lock_payment_and_request(payment_id)
    if payment.status != PaymentStatus.PENDING:
        return
    state = get_provider(payment.provider).authenticate(payment, approved)
    _apply_locked(pr, payment, state, source=source)


def receipt_number(seq: int) -> str:
    """A receipt's number from the merchant's counter (never reused: see ``take_numbers``)."""
    return f"R-{seq:06d}"


def _copy_method(payment: Payment, state: ProviderPayment) -> None:
    for attr in ("method_type", "card_brand", "card_last4"):
        value = getattr(state, attr)
        if value:
            setattr(payment, attr, value)
    if state.provider_payment_id and not payment.provider_payment_id:
        payment.provider_payment_id = state.provider_payment_id
    if state.charge_id:
        payment.provider_charge_id = state.charge_id


def flag(payment: Payment, reason: str) -> None:
    """Something support must look at (the payment row is locked by the caller)."""
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


def _fits(pr: PaymentRequest, amount: int) -> bool:
    """Whether ``amount`` may still be applied to ``pr`` (never more than it may receive)."""
    if pr.status not in PAYABLE or pr.reusable:
        return False
    if pr.kind == Kind.WALLET_TOPUP and pr.amount is None and pr.amount_paid > 0:
        return False  # a chosen top-up is paid once
    return pr.amount_paid + amount <= pr.payable_cap


def _settle(pr: PaymentRequest, payment: Payment, state: ProviderPayment) -> str:
    """The provider took the money: apply it, or give it back. Returns the outcome."""
    problem = _mismatch(payment, state)
    if problem:
        flag(payment, problem)
        return "flagged"
    _copy_method(payment, state)
    was_open = payment.status in OPEN_ATTEMPT
    transition(payment, PaymentStatus.SUCCEEDED)
    payment.succeeded_at = utcnow()
    if _fits(pr, payment.amount):
        # Also for an attempt the portal had closed (a stale tab paid it): the money counts
        # as long as the request may still receive it; attempts it overtakes are closed.
        _apply_money(pr, payment)
        book_early_refunds(payment)
        return "applied"
    if pr.status not in PAYABLE:
        payment.refund_due = REQUEST_CLOSED
    else:
        payment.refund_due = AMOUNT_DOES_NOT_FIT if was_open else SUPERSEDED
    log.info("payment %s: money not applicable (%s), refunding", payment.id, payment.refund_due)
    enqueue("refund_unapplied", {"payment_id": payment.id})
    book_early_refunds(payment)
    return "refund_due"


def _apply_money(pr: PaymentRequest, payment: Payment) -> None:
    payment.applied = True
    pr.amount_paid += payment.amount
    fully = pr.amount is None or pr.amount_paid >= pr.amount
    new = RequestStatus.PAID if fully else RequestStatus.PARTIALLY_PAID
    became_paid = new == RequestStatus.PAID
    # The receipt's number and the events' numbers in one UPDATE of the merchant's row;
    # without autoflush, the payment's changes then go out in one UPDATE with its receipt
    # number, not in two.
    with db.session.no_autoflush:
        seq, receipt = take_numbers(pr.merchant_id, events=2 if became_paid else 1, receipts=1)
    payment.receipt_number = receipt_number(receipt)
    if new != pr.status:
        transition(pr, new)
    if became_paid:
        pr.paid_at = payment.succeeded_at
    db.session.flush()
    kinds: list[tuple[str, dict[str, Any] | None]] = [("payment.succeeded", allocate(pr, payment))]
    if became_paid:
        kinds.append(("payment_request.paid", None))
    record_events(pr, payment, kinds, seq=seq)
    if payment.group_id is None:  # a group's one receipt lists its members (groups.py)
        enqueue("send_receipt", {"payment_id": payment.id}, max_attempts=MAIL_ATTEMPTS)
    _close_attempts_that_no_longer_fit(pr, payment)


def _close_attempts_that_no_longer_fit(pr: PaymentRequest, paid: Payment) -> None:
    """Another open attempt whose amount no longer fits must not be payable: closed here,
    canceled at the provider by the worker (``cancel_attempt``); should its money still
    arrive, it is refunded."""
    for attempt in _open_attempts(pr):
        if attempt.id == paid.id or _fits(pr, attempt.amount):
            continue
        if attempt.status == PaymentStatus.PENDING:
            transition(attempt, PaymentStatus.CANCELED)
            attempt.failure_code = SUPERSEDED
            if attempt.provider_payment_id:
                enqueue("cancel_attempt", {"payment_id": attempt.id})


def _apply_locked(
    pr: PaymentRequest, payment: Payment, state: ProviderPayment, *, source: str
) -> str:
    """Bring a locked payment in line with what the provider says; never moves backwards.

    A transition the table refuses (a bug, or data changed by hand) is rolled back to
    before this call, the payment flagged for support, and the provider answered so it
    stops retrying: a typed outcome, never a 500.
    """
    try:
        with db.session.begin_nested():
            outcome = _apply_state(pr, payment, state, source)
    except InvalidTransition as exc:
        pr, payment = lock_request(pr.id), lock_payment(payment.id)
        flag(payment, f"{source}: {exc}")
        db.session.flush()
        return "flagged"
    return outcome


def _apply_state(pr: PaymentRequest, payment: Payment, state: ProviderPayment, source: str) -> str:
    status = state.status
    if status == PaymentStatus.SUCCEEDED:
        if payment.status in OPEN_ATTEMPT or payment.status in (
            PaymentStatus.FAILED, PaymentStatus.CANCELED,
        ):  # fmt: skip
            return _settle(pr, payment, state)
        return "already settled"
    if status == PaymentStatus.PROCESSING:
        if can_transition(payment, PaymentStatus.PROCESSING):
            _copy_method(payment, state)
            transition(payment, PaymentStatus.PROCESSING)
            return "processing"
    elif status == PaymentStatus.FAILED:
        if can_transition(payment, PaymentStatus.FAILED) and payment.status in OPEN_ATTEMPT:
            _copy_method(payment, state)
            payment.failure_code = state.failure_code
            payment.failure_message = state.failure_message
            transition(payment, PaymentStatus.FAILED)
            record_event("payment.failed", pr, payment)
            return "failed"
    elif status == PaymentStatus.CANCELED:
        if can_transition(payment, PaymentStatus.CANCELED) and payment.status in OPEN_ATTEMPT:
            transition(payment, PaymentStatus.CANCELED)
            return "canceled"
    else:  # pending / requires_action: nothing settled yet
        _copy_method(payment, state)
        return status
    return "ignored"


def apply_provider_payment(
    payment_id: str,
    state: ProviderPayment,
    *,
    source: str = "provider",
    request_id: str | None = None,
) -> str:
    """What the provider says of an attempt, applied exactly once (webhooks, return page,
    reconciliation). Returns the outcome; the caller commits. ``request_id``: the
    payment's request, when the caller has read it (see :func:`lock_payment_and_request`)."""
    pr, payment = lock_payment_and_request(payment_id, request_id)
    outcome = _apply_locked(pr, payment, state, source=source)
    db.session.flush()
    return outcome


def refresh_payment(payment: Payment) -> str:
    """Ask the provider for the truth and apply it (return page, reconciliation)."""
    state = get_provider(payment.provider).retrieve(payment)
    return apply_provider_payment(payment.id, state, source="refresh")


def stuck_payments(
    older_than: timedelta = timedelta(minutes=15), limit: int = 100
) -> list[Payment]:
    """Attempts stuck in pending/processing (a lost webhook), oldest asked first: each is
    asked at most every ``older_than``, for a week (the worker's reconciliation)."""
    now = utcnow()
    return list(
        db.session.scalars(
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
        )
    )


def mark_asked(payment_id: str) -> None:
    """When the provider was last asked about an attempt (it waits ``older_than`` again)."""
    db.session.execute(update(Payment).where(Payment.id == payment_id).values(updated_at=utcnow()))


def fulfil_payment(payment_id: str, state: ProviderPayment | None = None) -> bool:
    """Settle an attempt as the provider would report its success (by default for its own
    amount): the bench and tests use it. True when the money was applied, False when it
    was already settled (or refunded instead)."""
    pr, payment = lock_payment_and_request(payment_id)
    if state is None:
        state = ProviderPayment(
            status=PaymentStatus.SUCCEEDED,
            amount=payment.amount,
            currency=payment.currency,
            provider_payment_id=payment.provider_payment_id,
        )
    outcome = _apply_locked(pr, payment, state, source="fulfil")
    db.session.flush()
    return outcome == "applied"
