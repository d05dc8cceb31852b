"""Rules for payment requests: creation (with every validation), listing, voiding, expiry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm.attributes import set_committed_value

from portal.api import schemas
from portal.api.contract import parse
from portal.db_types import utcnow
from portal.delivery.services import send_link
from portal.documents import card_pdf
from portal.errors import ApiError, Conflict, Invalid, NotFound
from portal.extensions import db
from portal.ledger.services import record_event
from portal.links import link_url
from portal.merchants.models import Merchant
from portal.money import format_money
from portal.pagination import newest_first
from portal.payment_requests.models import OrderLine, PaymentRequest, StatementLine
from portal.payments.models import Payment
from portal.payments.reusable import NEVER, open_children
from portal.payments.services import REQUEST_CLOSED, PaymentRefused, close_attempt, minimum_for
from portal.reminders.services import schedule_reminders
from portal.states import OPEN_ATTEMPT, Kind, PaymentStatus, RequestStatus, transition

DEFAULT_LIFETIME = {
    Kind.STATEMENT: timedelta(days=30),
    Kind.WALLET_TOPUP: timedelta(days=30),
    Kind.ORDER_DEPOSIT: timedelta(days=14),
}
MAX_LIFETIME = timedelta(days=120)
MAX_AMOUNT = schemas.MAX_AMOUNT


def _ceiling_check(merchant: Merchant, amount: int, field: str) -> None:
    if amount > merchant.ceiling:
        raise Invalid(
            "amount_exceeds_ceiling",
            f"{field} is above this merchant's ceiling of "
            f"{format_money(merchant.ceiling, merchant.currency)}.",
            field,
        )


def _minimum_check(merchant: Merchant, amount: int, field: str) -> None:
    minimum = minimum_for(merchant, merchant.currency)
    if amount < minimum:
        raise Invalid(
            "amount_below_minimum",
            f"{field} is below the smallest payment this merchant takes online "
            f"({format_money(minimum, merchant.currency)}).",
            field,
        )


def _customer(pr: PaymentRequest, customer: schemas.Customer | None) -> None:
    if customer is None:
        return
    pr.customer_name = customer.name
    pr.customer_reference = customer.reference
    pr.customer_email = customer.email
    pr.customer_phone = customer.phone
    pr.customer_locale = customer.locale


def _statement(pr: PaymentRequest, statement: schemas.Statement | None) -> list[StatementLine]:
    st = statement or schemas.Statement()
    pr.period_start, pr.period_end = st.period_start, st.period_end
    if pr.period_start and pr.period_end and pr.period_start > pr.period_end:
        raise Invalid(
            "invalid_period", "statement.period_start is after period_end.", "statement.period_end"
        )
    built = [
        StatementLine(position=i, date=ln.date, description=ln.description, amount=ln.amount,
                      reference=ln.reference, amount_settled=0)
        for i, ln in enumerate(st.lines)
    ]  # fmt: skip
    if st.balance is not None:
        pr.balance = st.balance
        if built and sum(ln.amount for ln in built) != pr.balance:
            raise Invalid(
                "lines_do_not_match_balance",
                "The statement lines do not add up to statement.balance.",
                "statement.lines",
            )
        if (pr.amount or 0) > pr.balance:
            raise Invalid(
                "amount_exceeds_balance",
                "amount (the amount due) is larger than statement.balance.",
                "amount",
            )
    return built


def _order(pr: PaymentRequest, merchant: Merchant, order: schemas.Order) -> list[OrderLine]:
    pr.order_reference = order.reference
    built = [
        OrderLine(position=i, description=ln.description, quantity=ln.quantity,
                  unit_amount=ln.unit_amount)
        for i, ln in enumerate(order.lines)
    ]  # fmt: skip
    lines_total = sum(ln.total for ln in built)
    if lines_total > MAX_AMOUNT:  # each line is in range, their sum need not be
        raise Invalid("invalid_value", "order.lines add up to too much.", "order.lines")
    if order.total is not None:
        pr.order_total = order.total
        if built and lines_total != pr.order_total:
            raise Invalid(
                "lines_do_not_match_total",
                "The order lines do not add up to order.total.",
                "order.lines",
            )
    elif lines_total > 0:
        pr.order_total = lines_total
    else:
        raise Invalid(
            "missing_field", "order.total (or priced order.lines) is required.", "order.total"
        )
    if (pr.amount or 0) > pr.order_total:
        raise Invalid(
            "deposit_exceeds_total", "amount (the deposit) is larger than order.total.", "amount"
        )
    if pr.allow_full_payment:
        _ceiling_check(merchant, pr.order_total, "order.total")
    return built


def _wallet(pr: PaymentRequest, merchant: Merchant, wallet: schemas.Wallet | None) -> None:
    if pr.amount is not None:
        if wallet is not None and wallet.model_fields_set:
            raise Invalid(
                "invalid_value",
                "Give either amount (a fixed top-up) or wallet bounds, not both.",
                "wallet",
            )
        return
    wallet = wallet or schemas.Wallet()
    pr.wallet_min = wallet.min_amount or minimum_for(merchant, merchant.currency)
    _minimum_check(merchant, pr.wallet_min, "wallet.min_amount")
    pr.wallet_max = wallet.max_amount or merchant.ceiling
    _ceiling_check(merchant, pr.wallet_max, "wallet.max_amount")
    if pr.wallet_min > pr.wallet_max:
        raise Invalid(
            "invalid_bounds",
            "wallet.min_amount is larger than wallet.max_amount.",
            "wallet.min_amount",
        )
    for i, amount in enumerate(wallet.suggested):
        if not pr.wallet_min <= amount <= pr.wallet_max:
            raise Invalid(
                "amount_out_of_bounds",
                "Each suggested amount must lie between min_amount and max_amount.",
                f"wallet.suggested[{i}]",
            )
    pr.wallet_suggested = list(wallet.suggested)


def _reusable(pr: PaymentRequest, body: schemas.CreateWalletTopup) -> None:
    """A reusable top-up stays open until voided: it has no expiry (``NEVER`` is stored,
    the API answers ``expires_at: null``); its children expire (portal/payments/reusable.py)."""
    if body.expires_at is not None:
        raise Invalid(
            "invalid_value",
            "A reusable top-up does not expire (void it to close it): omit expires_at.",
            "expires_at",
        )
    pr.reusable = True
    pr.expires_at = NEVER


def _expiry(pr: PaymentRequest, expires: datetime | None, now: datetime) -> datetime:
    latest = now + MAX_LIFETIME
    if expires is not None:
        if expires <= now:
            raise Invalid("expiry_in_past", "expires_at must be in the future.", "expires_at")
        if expires > latest:
            raise Invalid(
                "expiry_too_far", "expires_at must be at most 120 days from now.", "expires_at"
            )
        return expires
    default = now + DEFAULT_LIFETIME[Kind(pr.kind)]
    if pr.kind == Kind.STATEMENT and pr.due_date is not None:
        if pr.due_date >= latest.date():
            default = latest  # (and no date arithmetic that overflows near year 9999)
        else:
            after_due = datetime.combine(pr.due_date, time(23, 59, 59), UTC) + timedelta(days=30)
            if after_due > now:
                default = after_due
    return min(default, latest)


def create_payment_request(
    merchant: Merchant,
    data: schemas.AnyCreate | Mapping[str, Any],
    api_key_id: str | None = None,
    now: datetime | None = None,
) -> PaymentRequest:
    """Add a new request to the session from the API's body (a model, or the JSON object,
    which is parsed as the API parses it). Adds and flushes; the caller commits.

    The shapes and limits are the contract's (:mod:`portal.api.schemas`); the rules
    here are the ones that need the merchant or the clock (``now``: tests drive it; the
    request's reminders are scheduled from it). Raises :class:`Invalid`
    (422 with a code and a field); nothing is written then.
    """
    body = data if isinstance(data, schemas.AnyCreate) else parse_create(data)
    if body.currency != merchant.currency:
        raise Invalid(
            "currency_not_enabled",
            f"This merchant charges in {merchant.currency} only.",
            "currency",
        )
    now = now or utcnow()
    pr = PaymentRequest(
        merchant=merchant, merchant_id=merchant.id, kind=body.kind, status=RequestStatus.OPEN,
        currency=body.currency, created_by_key_id=api_key_id, created_at=now, updated_at=now,
        amount=body.amount, reference=body.reference, description=body.description,
        due_date=body.due_date, metadata_=dict(body.metadata or {}),
        allow_partial=body.allow_partial, allow_full_payment=body.allow_full_payment,
        reminders=body.reminders, wallet_suggested=[], amount_paid=0, amount_refunded=0,
        open_count=0,
    )  # fmt: skip
    if pr.amount is not None:
        _ceiling_check(merchant, pr.amount, "amount")
        _minimum_check(merchant, pr.amount, "amount")
    _customer(pr, body.customer)
    lines: list[StatementLine] | list[OrderLine] = []
    if isinstance(body, schemas.CreateStatement):
        lines = _statement(pr, body.statement)
    elif isinstance(body, schemas.CreateOrderDeposit):
        lines = _order(pr, merchant, body.order)
    else:
        _wallet(pr, merchant, body.wallet)
    pr.expires_at = _expiry(pr, body.expires_at, now)
    if isinstance(body, schemas.CreateWalletTopup) and body.reusable:
        _reusable(pr, body)
    db.session.add(pr)
    db.session.flush()
    if lines:
        _insert_lines(pr, lines)
    schedule_reminders(pr, now)
    for i, channel in enumerate(dict.fromkeys(body.send)):
        try:
            send_link(pr, channel)
        except Invalid as exc:
            raise Invalid(exc.code, exc.message, f"send[{i}]") from None
    return pr


def parse_create(data: Mapping[str, Any]) -> schemas.AnyCreate:
    """The API's body as the contract reads it (:class:`Invalid` when it does not fit)."""
    return parse(schemas.CreatePaymentRequest, data).root


@cache
def _multirow_insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    """SQLite's: ``INSERT … VALUES (?, …), (?, …)``, one row of marks per line."""
    row = "(" + ", ".join(["?"] * len(columns)) + ")"
    # Names from the models' own tables, values only as parameters: nothing from input.
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) VALUES " + ", ".join([row] * rows)  # noqa: S608


@cache
def _unnest_insert(table: Table, columns: tuple[str, ...]) -> str:
    """PostgreSQL's: ``INSERT … SELECT * FROM unnest(%s::int[], …)``, one array per column:
    the same short statement for any number of lines, so psycopg converts it once (it
    converts a statement of more than 50 parameters again at every call, a tenth of a
    create's CPU with 20 lines of 7 columns) and the server can keep it prepared."""
    dialect = db.engine.dialect
    arrays = ", ".join(f"%s::{table.c[name].type.compile(dialect=dialect)}[]" for name in columns)
    names = ", ".join(columns)
    return f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608


def _insert_lines(pr: PaymentRequest, lines: list[StatementLine] | list[OrderLine]) -> None:
    """Up to 500 lines in one INSERT: one statement and one round trip, not an executemany
    of one statement per line, nor ORM objects (a create's largest cost). The request's
    collection is filled from the same objects, so the answer shows them."""
    model = type(lines[0])
    table = model.__table__
    assert isinstance(table, Table)
    names = tuple(c.key for c in table.columns if c.key != "id")
    for line in lines:
        line.request_id = pr.id
    # The driver's own SQL, built once per table (and number of lines on SQLite):
    # SQLAlchemy would compile and key a multi-row statement again at every create.
    if db.engine.dialect.name == "postgresql":
        sql = _unnest_insert(table, names)
        values: tuple[Any, ...] = tuple([getattr(ln, n) for ln in lines] for n in names)
    else:
        sql = _multirow_insert(table.name, names, len(lines))
        values = tuple(getattr(ln, n) for ln in lines for n in names)
    db.session.connection().exec_driver_sql(sql, values)
    attribute = "statement_lines" if model is StatementLine else "order_lines"
    set_committed_value(pr, attribute, lines)


def get_for_merchant(merchant: Merchant, request_id: str, *, lock: bool = False) -> PaymentRequest:
    """The merchant's request, or a 404 (also for another merchant's id)."""
    query = select(PaymentRequest).where(
        PaymentRequest.id == request_id, PaymentRequest.merchant_id == merchant.id
    )
    if lock:
        query = query.with_for_update(of=PaymentRequest)
    pr = db.session.scalars(query).first()
    if pr is None:
        raise NotFound("payment request")
    return pr


def list_for_merchant(
    merchant: Merchant,
    *,
    status: str | None = None,
    reference: str | None = None,
    customer_reference: str | None = None,
    limit: int = 20,
    starting_after: str | None = None,
) -> tuple[list[PaymentRequest], bool]:
    """Newest first, cursor-paginated by id; returns (page, has_more)."""
    query = select(PaymentRequest).where(PaymentRequest.merchant_id == merchant.id)
    if status:
        query = query.where(PaymentRequest.status == status)
    if reference:
        query = query.where(PaymentRequest.reference == reference)
    if customer_reference:
        query = query.where(PaymentRequest.customer_reference == customer_reference)
    return newest_first(query, PaymentRequest, merchant.id, starting_after, limit, "requests")


def is_expired(pr: PaymentRequest, now: datetime | None = None) -> bool:
    """Expired in fact, even before the periodic job has written the status."""
    return pr.is_expired(now)


def has_payment_in_flight(pr: PaymentRequest) -> bool:
    return (
        db.session.scalar(
            select(Payment.id)
            .where(
                Payment.request_id == pr.id,
                Payment.status.in_([PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED]),
            )
            .limit(1)
        )
        is not None
    )


def void_request(merchant: Merchant, request_id: str, reason: str | None = None) -> PaymentRequest:
    """Void a request while nothing is paid; writes ``payment_request.voided``.

    The caller commits (the API commits together with the idempotency record).
    """
    pr = get_for_merchant(merchant, request_id, lock=True)
    _void_locked(pr)
    if pr.reusable:
        _void_children(pr)
    db.session.flush()
    return pr


def _void_children(parent: PaymentRequest) -> None:
    """A void reusable link takes no new payment; its children that were only started
    are voided too (their open attempts closed at the provider), while a child whose
    payment is in flight follows the ordinary rules: it stays open and its money counts."""
    for child in open_children(parent):
        try:
            _void_locked(child)
        except Conflict:
            continue


def _close_open_attempts(pr: PaymentRequest) -> bool:
    """Cancel the request's open attempt at the provider before the request closes: a page
    left open must not take money afterwards. False when the provider settled it (or
    cannot be asked): the request must stay as it is."""
    attempts = db.session.scalars(
        select(Payment)
        .where(Payment.request_id == pr.id, Payment.status.in_(OPEN_ATTEMPT))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for attempt in attempts:
        if attempt.status != PaymentStatus.PENDING:
            return False
        try:
            if not close_attempt(pr, attempt, REQUEST_CLOSED):
                return False
        except PaymentRefused:
            return False
    return True


def _void_locked(pr: PaymentRequest) -> None:
    if pr.status == RequestStatus.VOID:
        raise Conflict("already_void", "This payment request is already void.")
    if pr.status != RequestStatus.OPEN or pr.amount_paid > 0:
        raise Conflict("request_not_voidable", f"A {pr.status} payment request cannot be voided.")
    if has_payment_in_flight(pr) or not _close_open_attempts(pr):
        raise Conflict(
            "payment_in_progress", "A payment for this request is in progress; it cannot be voided."
        )
    transition(pr, RequestStatus.VOID)
    pr.voided_at = utcnow()
    record_event("payment_request.voided", pr)


def void_customer_requests(merchant: Merchant, customer_reference: str) -> list[str]:
    """Void every open request of one customer (lost phone, closed account). Caller commits."""
    ref = customer_reference
    rows = db.session.scalars(
        select(PaymentRequest)
        .where(
            PaymentRequest.merchant_id == merchant.id,
            PaymentRequest.customer_reference == ref,
            PaymentRequest.status == RequestStatus.OPEN,
            PaymentRequest.amount_paid == 0,
        )
        .order_by(PaymentRequest.created_at)
        .with_for_update(of=PaymentRequest)
    ).all()
    voided = []
    for pr in rows:
        if has_payment_in_flight(pr):
            continue
        try:
            _void_locked(pr)
        except Conflict:
            continue  # its payment is being settled: it stays open
        voided.append(pr.id)
    db.session.flush()
    return voided


def expire_overdue(now: datetime | None = None, batch: int = 500) -> int:
    """Mark open requests past their expiry as expired, with their events."""
    now = now or utcnow()
    rows = db.session.scalars(
        select(PaymentRequest)
        .where(PaymentRequest.status == RequestStatus.OPEN, PaymentRequest.expires_at <= now)
        .limit(batch)
        .with_for_update(skip_locked=True, of=PaymentRequest)
    ).all()
    count = 0
    for pr in rows:
        if has_payment_in_flight(pr) or not _close_open_attempts(pr):
            continue  # a payment in flight decides; expiry waits
        transition(pr, RequestStatus.EXPIRED)
        record_event("payment_request.expired", pr)
        count += 1
    db.session.flush()
    return count


def printable_card(merchant: Merchant, request_id: str, size: str, locale: str | None) -> bytes:
    """The QR card of a reusable top-up link (PDF); 409 for any other request, or once
    the link is void (a card must not lead to a dead end)."""
    pr = get_for_merchant(merchant, request_id)
    if not pr.reusable:
        raise Conflict("not_reusable", "Only a reusable top-up link has a printable card.")
    if pr.status != RequestStatus.OPEN:
        raise Conflict("request_closed", f"A {pr.status} link has no printable card.")
    return card_pdf(pr, locale or merchant.default_locale or "en", size, link_url(pr.id))


def today() -> date:
    return utcnow().date()


__all__ = [
    "ApiError",
    "create_payment_request",
    "expire_overdue",
    "get_for_merchant",
    "is_expired",
    "list_for_merchant",
    "void_customer_requests",
    "void_request",
]
