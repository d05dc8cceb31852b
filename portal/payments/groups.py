"""One payment for several requests of one customer: the account page (``/a/<token>``).

A :class:`PaymentGroup` is one attempt at the provider for the total; its members are
ordinary payments, one per request, each with its share (and, on a statement, the lines
the customer ticked). What the provider says of the group is applied to every member in
the same transaction, through the same settlement as a single payment
(:func:`portal.payments.services._apply_locked`): each request gets its own
``payment.succeeded`` (with its allocation) and ``payment_request.paid``, and a member
whose request stopped being payable meanwhile is refunded by the usual late-money path.

Amounts come from the database only: the customer picks request and line ids (and types
a top-up amount); the shares are computed here, under the requests' locks.

Lock order: every open request of the customer (by id), then the group, then the member
payments, then the merchant (receipt numbers) — the order of a single payment, with the
group between the requests and their payments.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from flask import current_app
from sqlalchemy import select, update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.queue import MAIL_ATTEMPTS, enqueue
from portal.links import account_url
from portal.payment_requests.models import PaymentRequest, StatementLine
from portal.payments.models import Allocation, Payment, PaymentGroup
from portal.payments.services import (
    SUPERSEDED,
    PaymentRefused,
    _apply_locked,
    _open_attempts,
    close_attempt,
    flag,
    minimum_for,
)
from portal.providers.base import (
    CheckoutPage,
    ProviderError,
    ProviderPayment,
    Submission,
    get_provider,
)
from portal.states import OPEN_ATTEMPT, PAYABLE, Kind, PaymentStatus, transition

if TYPE_CHECKING:
    from portal.merchants.models import Merchant

log = logging.getLogger(__name__)

# The providers whose charge may stand for several requests. The sandbox charges the
# group as it charges a payment; Stripe makes one PaymentIntent for the group (its
# metadata names the group, on the merchant's connected account), maps its events to the
# group, and refunds a member as a partial refund of that intent (docs/stripe.md).
GROUP_PROVIDERS = ("sandbox", "stripe")


@dataclass(frozen=True)
class Selection:
    """What the customer ticked: whole requests, statement lines, one top-up and its
    amount (minor units, parsed from what was typed)."""

    requests: frozenset[str] = frozenset()
    lines: frozenset[int] = frozenset()
    topup: str | None = None
    topup_amount: int | None = None

    @property
    def key(self) -> str:
        text = repr((sorted(self.requests), sorted(self.lines), self.topup, self.topup_amount))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Share:
    """One member: its request, what it pays, the lines it settles (None: oldest first)."""

    pr: PaymentRequest
    amount: int
    lines: list[int] | None = None


@dataclass
class Account:
    """The account page: the requests payable together (the merchant's currency) and the
    ones in another currency (each paid from its own link)."""

    merchant_id: str
    reference: str
    currency: str
    items: list[PaymentRequest] = field(default_factory=list)
    elsewhere: list[PaymentRequest] = field(default_factory=list)


def account_key(merchant_id: str, reference: str) -> str:
    return f"{merchant_id}:{reference}"


def open_requests(merchant_id: str, reference: str, *, lock: bool = False) -> list[PaymentRequest]:
    """Every request of the customer that may still be paid, by id (the lock order); not
    a reusable top-up link nor its children, which are paid through that link."""
    query = (
        select(PaymentRequest)
        .where(
            PaymentRequest.merchant_id == merchant_id,
            PaymentRequest.customer_reference == reference,
            PaymentRequest.status.in_(PAYABLE),
            # A reusable top-up link and the children it makes pay through their own link.
            PaymentRequest.reusable.is_(False),
            PaymentRequest.parent_request_id.is_(None),
        )
        .order_by(PaymentRequest.id)
    )
    if lock:
        query = query.with_for_update(of=PaymentRequest).execution_options(populate_existing=True)
    return [pr for pr in db.session.scalars(query) if not pr.is_expired()]


def whole_amount(pr: PaymentRequest) -> int | None:
    """What ticking the whole request pays (None: a top-up whose amount is typed)."""
    if pr.amount is None:
        return None
    return pr.amount_due or None


def topup_open(pr: PaymentRequest) -> bool:
    return pr.kind == Kind.WALLET_TOPUP and pr.amount is None and pr.amount_paid == 0


def tickable_lines(pr: PaymentRequest) -> list[StatementLine]:
    """The statement lines the customer may tick one by one (the merchant allows partial
    payment): open debits."""
    if pr.kind != Kind.STATEMENT or not pr.allow_partial:
        return []
    return [ln for ln in pr.statement_lines if ln.amount > 0 and ln.amount_settled < ln.amount]


def account(merchant: Merchant, reference: str) -> Account:
    found = Account(merchant.id, reference, merchant.currency)
    for pr in open_requests(merchant.id, reference):
        payable = whole_amount(pr) is not None or topup_open(pr)
        if not payable:
            continue
        (found.items if pr.currency == merchant.currency else found.elsewhere).append(pr)
    return found


def customer_link(merchant: Merchant, reference: str) -> tuple[str, str, list[str]]:
    """The account page's link, its currency, and the requests it shows now."""
    found = account(merchant, reference)
    ids = [pr.id for pr in found.items + found.elsewhere]
    return account_url(merchant.id, reference), found.currency, ids


def topup_bounds(pr: PaymentRequest) -> tuple[int, int]:
    ceiling = pr.merchant.ceiling
    return pr.wallet_min or 1, min(pr.wallet_max or ceiling, ceiling)


def _line_share(pr: PaymentRequest, chosen: set[int]) -> Share:
    lines = [ln for ln in tickable_lines(pr) if ln.id in chosen]
    amount = min(sum(ln.amount - ln.amount_settled for ln in lines), pr.amount_due or 0)
    return Share(pr, amount, sorted(ln.id for ln in lines))


def _topup_share(pr: PaymentRequest, amount: int | None, minimum: int) -> Share:
    if amount is None:
        raise PaymentRefused("amount_required")
    low, high = topup_bounds(pr)
    if amount < low:
        raise PaymentRefused("amount_below_minimum", bounds=(low, high, minimum))
    if amount > high:
        raise PaymentRefused("amount_above_maximum", bounds=(low, high, minimum))
    return Share(pr, amount)


def shares_for(prs: list[PaymentRequest], selection: Selection, merchant: Merchant) -> list[Share]:
    """The members of a payment of ``selection``, from the database; raises
    :class:`PaymentRefused` for an id that is not one of these open requests (tampered,
    another customer's, paid meanwhile) and for a total outside the merchant's rules."""
    by_id = {pr.id: pr for pr in prs if pr.currency == merchant.currency}
    line_owner = {ln.id: pr.id for pr in by_id.values() for ln in tickable_lines(pr)}
    minimum = minimum_for(merchant, merchant.currency)
    if not selection.requests <= by_id.keys() or not selection.lines <= line_owner.keys():
        raise PaymentRefused("not_payable")
    if selection.topup is not None and (
        selection.topup not in by_id or not topup_open(by_id[selection.topup])
    ):
        raise PaymentRefused("not_payable")
    shares: list[Share] = []
    for request_id in sorted(selection.requests | {line_owner[i] for i in selection.lines}):
        pr = by_id[request_id]
        whole = whole_amount(pr)
        if whole is None:
            raise PaymentRefused("not_payable")  # a top-up is chosen with its amount
        if request_id in selection.requests:
            shares.append(Share(pr, whole))
        else:
            shares.append(_line_share(pr, set(selection.lines)))
    if selection.topup is not None:
        shares.append(_topup_share(by_id[selection.topup], selection.topup_amount, minimum))
    shares = [s for s in shares if s.amount > 0]
    if not shares:
        raise PaymentRefused("nothing_chosen")
    total, ceiling = sum(s.amount for s in shares), merchant.ceiling
    if total < minimum:
        raise PaymentRefused("total_below_minimum", bounds=(minimum, ceiling, minimum))
    if total > ceiling:
        raise PaymentRefused("total_above_ceiling", bounds=(minimum, ceiling, minimum))
    return shares


def _open_group(key: str) -> PaymentGroup | None:
    return db.session.scalars(
        select(PaymentGroup)
        .where(PaymentGroup.account_key == key, PaymentGroup.status.in_(OPEN_ATTEMPT))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _reusable(
    group: PaymentGroup, selection: Selection, shares: list[Share], provider: str
) -> bool:
    members = {(m.request_id, m.amount) for m in group.members}
    return (
        group.status == PaymentStatus.PENDING
        and group.provider == provider
        and group.selection_key == selection.key
        and members == {(s.pr.id, s.amount) for s in shares}
        and all(m.status == PaymentStatus.PENDING for m in group.members)
    )


def start_group(
    merchant: Merchant,
    reference: str,
    selection: Selection,
    *,
    locale: str | None = None,
    receipt_email: str | None = None,
) -> PaymentGroup:
    """Open (or reuse) the one attempt paying ``selection``.

    Every open request of the customer is locked first, so a double click or a second tab
    waits and then reuses this attempt; another selection replaces it (closing its
    members) instead. Raises :class:`PaymentRefused`; "changed" means what the provider
    said of a replaced attempt was applied (the caller commits that and shows the page)."""
    provider = current_app.config["PORTAL_PAYMENT_PROVIDER"]
    if provider not in GROUP_PROVIDERS:
        raise PaymentRefused("not_available")
    prs = open_requests(merchant.id, reference, lock=True)
    shares = shares_for(prs, selection, merchant)
    key = account_key(merchant.id, reference)
    existing = _open_group(key)
    if existing is not None:
        if _reusable(existing, selection, shares, provider):
            existing.receipt_email = existing.receipt_email or receipt_email
            existing.locale = locale or existing.locale
            return existing
        _close_group(prs, existing)
    for share in shares:
        for attempt in _open_attempts(share.pr):
            if not close_attempt(share.pr, attempt, SUPERSEDED):
                raise PaymentRefused("changed")
    group = PaymentGroup(
        merchant_id=merchant.id, customer_reference=reference, account_key=key,
        selection_key=selection.key, amount=sum(s.amount for s in shares),
        currency=merchant.currency, provider=provider, locale=locale,
        receipt_email=receipt_email or next((s.pr.customer_email for s in shares
                                             if s.pr.customer_email), None),
    )  # fmt: skip
    db.session.add(group)
    db.session.flush()
    for share in shares:
        db.session.add(
            Payment(
                request_id=share.pr.id, merchant_id=merchant.id, amount=share.amount,
                currency=share.pr.currency, provider=provider, group_id=group.id,
                chosen_lines=share.lines, receipt_email=receipt_email or share.pr.customer_email,
                locale=locale,
            )
        )  # fmt: skip
    db.session.flush()
    _prepare(group)
    return group


def _as_payment(group: PaymentGroup) -> Payment:
    """The provider charges the group as it charges one payment: it reads its id, amount,
    currency, status and provider id only (GROUP_PROVIDERS)."""
    return cast(Payment, group)


def _prepare(group: PaymentGroup) -> dict[str, Any]:
    try:
        data = get_provider(group.provider).prepare(_as_payment(group), cast(Any, None))
    except ProviderError as exc:
        log.warning("the provider could not set up %s: %s", group.id, exc)
        raise PaymentRefused("try_again") from None
    group.provider_payment_id = group.provider_payment_id or data.get("provider_payment_id")
    db.session.flush()
    return data


def _close_group(prs: list[PaymentRequest], group: PaymentGroup) -> None:
    """Cancel a replaced group at the provider, then its members (all locked)."""
    try:
        state = get_provider(group.provider).cancel(_as_payment(group))
    except ProviderError as exc:
        log.warning("could not cancel %s at the provider: %s", group.id, exc)
        raise PaymentRefused("try_again") from None
    members = _lock_members(group.id)
    if state.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING):
        apply_group_state(prs, group, members, state, source="cancel")
        raise PaymentRefused("changed")
    apply_group_state(prs, group, members, state, source="replaced")


def _lock_members(group_id: str) -> list[Payment]:
    return list(
        db.session.scalars(
            select(Payment)
            .where(Payment.group_id == group_id)
            .order_by(Payment.request_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def lock_group(group_id: str) -> tuple[list[PaymentRequest], PaymentGroup, list[Payment]]:
    """The group's requests (by id), the group, then its members: the documented order."""
    request_ids = sorted(
        db.session.scalars(select(Payment.request_id).where(Payment.group_id == group_id))
    )
    prs = [
        db.session.scalars(
            select(PaymentRequest)
            .where(PaymentRequest.id == request_id)
            .with_for_update(of=PaymentRequest)
            .execution_options(populate_existing=True)
        ).one()
        for request_id in request_ids
    ]
    group = db.session.scalars(
        select(PaymentGroup)
        .where(PaymentGroup.id == group_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return prs, group, _lock_members(group_id)


def _member_state(member: Payment, state: ProviderPayment) -> ProviderPayment:
    """What the provider said of the group, for one member's share."""
    return ProviderPayment(
        status=state.status, amount=member.amount, currency=member.currency,
        method_type=state.method_type, card_brand=state.card_brand,
        card_last4=state.card_last4, failure_code=state.failure_code,
        failure_message=state.failure_message,
    )  # fmt: skip


def _copy_method(group: PaymentGroup, state: ProviderPayment) -> None:
    for attr in ("method_type", "card_brand", "card_last4", "failure_code", "failure_message"):
        value = getattr(state, attr)
        if value:
            setattr(group, attr, value)


def apply_group_state(
    prs: list[PaymentRequest],
    group: PaymentGroup,
    members: list[Payment],
    state: ProviderPayment,
    *,
    source: str,
) -> str:
    """What the provider says of the group, applied to it and to every member in this
    one transaction (all rows locked by the caller); never moves backwards."""
    by_id = {pr.id: pr for pr in prs}
    if state.status == PaymentStatus.SUCCEEDED:
        if state.amount != group.amount or state.currency.upper() != group.currency:
            group.flagged_reason = f"provider reports {state.amount} {state.currency.upper()}"
            for member in members:
                flag(member, f"group {group.id}: {group.flagged_reason}")
            db.session.flush()
            return "flagged"
        if group.status == PaymentStatus.SUCCEEDED:
            return "already settled"
        _copy_method(group, state)
        transition(group, PaymentStatus.SUCCEEDED)
        group.succeeded_at = utcnow()
    elif (
        group.status in OPEN_ATTEMPT
        and group.status != state.status
        and state.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED, PaymentStatus.PROCESSING)
    ):
        _copy_method(group, state)
        transition(group, state.status)
    else:
        _copy_method(group, state)
        db.session.flush()
        return str(state.status)
    for member in members:
        _apply_locked(by_id[member.request_id], member, _member_state(member, state), source=source)
    if (
        group.status == PaymentStatus.SUCCEEDED
        and group.receipt_email
        and any(m.applied for m in members)
    ):
        enqueue("send_group_receipt", {"group_id": group.id}, max_attempts=MAIL_ATTEMPTS)
    db.session.flush()
    return str(group.status)


def group_checkout_page(group: PaymentGroup, step: str | None) -> CheckoutPage:
    """The provider's checkout page for an open group (its card form, its 3-D Secure)."""
    prepared = _prepare(group) if step is None else {}
    try:
        return get_provider(group.provider).checkout_page(
            _as_payment(group), cast(Any, None), step, prepared
        )
    except ProviderError as exc:
        log.warning("the provider could not show %s: %s", group.id, exc)
        raise PaymentRefused("try_again") from None


def submit_group(group_id: str, step: str | None, form: Mapping[str, str]) -> Submission:
    """A checkout form for the group, handed to the provider under every lock: a double
    click or a second tab pays once. An empty submission once the group is no longer open."""
    prs, group, members = lock_group(group_id)
    if group.status != PaymentStatus.PENDING:
        return Submission()
    try:
        submission = get_provider(group.provider).submit(_as_payment(group), step, form)
    except ProviderError as exc:
        log.warning("the provider could not take %s: %s", group_id, exc)
        raise PaymentRefused("try_again") from None
    if submission.state is not None:
        apply_group_state(prs, group, members, submission.state, source=f"group:{step or 'pay'}")
    return submission


def refresh_group(group_id: str) -> str:
    """Ask the provider about an open group and apply what it says (the return page, the
    reconciliation of a lost webhook). Raises ProviderError when it does not answer."""
    group = db.session.get_one(PaymentGroup, group_id)
    state = get_provider(group.provider).retrieve(_as_payment(group))
    prs, group, members = lock_group(group_id)
    return apply_group_state(prs, group, members, state, source="refresh")


def refresh_group_for_customer(group_id: str) -> None:
    """The return page: when the provider does not answer, the page says "being processed"
    and the webhook will tell."""
    try:
        refresh_group(group_id)
    except ProviderError as exc:
        db.session.rollback()
        log.warning("could not ask the provider about %s: %s", group_id, exc)


def stuck_groups(older_than: timedelta = timedelta(minutes=15), limit: int = 100) -> list[str]:
    """Open groups at a provider with webhooks not heard of for ``older_than`` (a lost
    webhook), for a week, oldest asked first (the worker's reconciliation)."""
    now = utcnow()
    return list(
        db.session.scalars(
            select(PaymentGroup.id)
            .where(
                PaymentGroup.status.in_(OPEN_ATTEMPT),
                PaymentGroup.provider != "sandbox",
                PaymentGroup.provider_payment_id.is_not(None),
                PaymentGroup.updated_at < now - older_than,
                PaymentGroup.created_at > now - timedelta(days=7),
            )
            .order_by(PaymentGroup.updated_at)
            .limit(limit)
        )
    )


def mark_group_asked(group_id: str) -> None:
    db.session.execute(
        update(PaymentGroup).where(PaymentGroup.id == group_id).values(updated_at=utcnow())
    )


def fulfil_group(group_id: str) -> str:
    """Settle a group as the provider would report its success (tests, the bench)."""
    prs, group, members = lock_group(group_id)
    state = ProviderPayment(
        status=PaymentStatus.SUCCEEDED, amount=group.amount, currency=group.currency,
        provider_payment_id=group.provider_payment_id,
    )  # fmt: skip
    return apply_group_state(prs, group, members, state, source="fulfil")


def paid_lines(members: list[Payment]) -> dict[str, list[tuple[StatementLine, int]]]:
    """Per member payment, (statement line, amount) of what it settled."""
    found: dict[str, list[tuple[StatementLine, int]]] = {m.id: [] for m in members}
    for member in members:
        lines = {ln.id: ln for ln in member.request.statement_lines}
        rows = db.session.query(Allocation).filter(
            Allocation.payment_id == member.id, Allocation.refund_id.is_(None)
        )
        for row in rows.order_by(Allocation.id):
            if row.line_id in lines and row.amount > 0:
                found[member.id].append((lines[row.line_id], row.amount))
    return found
