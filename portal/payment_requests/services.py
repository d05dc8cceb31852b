"""Rules for payment requests: creation (with every validation), listing, voiding, expiry."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm.attributes import set_committed_value

from portal import validation as v
from portal.db_types import utcnow
from portal.errors import ApiError, Conflict, Invalid, NotFound
from portal.extensions import db
from portal.ledger.services import record_event
from portal.merchants.models import Merchant
from portal.money import format_money, is_supported_currency
from portal.payment_requests.models import OrderLine, PaymentRequest, StatementLine
from portal.payments.models import Payment
from portal.payments.services import REQUEST_CLOSED, PaymentRefused, close_attempt, minimum_for
from portal.states import OPEN_ATTEMPT, Kind, PaymentStatus, RequestStatus, transition

DEFAULT_LIFETIME = {
    Kind.STATEMENT: timedelta(days=30),
    Kind.WALLET_TOPUP: timedelta(days=30),
    Kind.ORDER_DEPOSIT: timedelta(days=14),
}
MAX_LIFETIME = timedelta(days=120)
MAX_LINES = 500
LOCALES = ("en", "fr", "nl")

TOP_FIELDS = {
    "kind", "currency", "amount", "reference", "description", "customer", "due_date",
    "expires_at", "metadata", "statement", "order", "wallet", "allow_partial",
    "allow_full_payment", "send",
}  # fmt: skip


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


def _customer(pr: PaymentRequest, data: dict[str, Any]) -> None:
    customer = v.as_object(data, "customer")
    v.no_unknown_fields(customer, {"name", "email", "phone", "locale", "reference"}, "customer.")
    pr.customer_name = v.opt_string(customer, "name", "customer.name", 200)
    pr.customer_reference = v.opt_string(customer, "reference", "customer.reference", 100)
    if customer.get("email") is not None:
        pr.customer_email = v.as_email(customer["email"], "customer.email")
    if customer.get("phone") is not None:
        pr.customer_phone = v.as_phone(customer["phone"], "customer.phone")
    if customer.get("locale") is not None:
        locale = v.as_string(customer["locale"], "customer.locale", 10)
        base = locale.replace("-", "_").split("_")[0].lower()
        if base not in LOCALES:
            raise Invalid(
                "unsupported_locale",
                "customer.locale must be one of en, fr, nl.",
                "customer.locale",
            )
        pr.customer_locale = base


def _statement(pr: PaymentRequest, merchant: Merchant, data: dict[str, Any]) -> list[StatementLine]:
    st = v.as_object(data, "statement")
    v.no_unknown_fields(st, {"period_start", "period_end", "balance", "lines"}, "statement.")
    if st.get("period_start") is not None:
        pr.period_start = v.as_date(st["period_start"], "statement.period_start")
    if st.get("period_end") is not None:
        pr.period_end = v.as_date(st["period_end"], "statement.period_end")
    if pr.period_start and pr.period_end and pr.period_start > pr.period_end:
        raise Invalid(
            "invalid_period", "statement.period_start is after period_end.", "statement.period_end"
        )
    lines = v.as_list(st.get("lines", []), "statement.lines", MAX_LINES)
    built: list[StatementLine] = []
    for i, raw in enumerate(lines):
        path = f"statement.lines[{i}]"
        line = v.as_object(raw, path)
        v.no_unknown_fields(line, {"date", "description", "amount", "reference"}, f"{path}.")
        built.append(
            StatementLine(
                position=i,
                date=v.as_date(line["date"], f"{path}.date") if line.get("date") else None,
                description=v.as_string(
                    v.require(line, "description", f"{path}.description"),
                    f"{path}.description",
                    300,
                ),
                amount=v.as_int(v.require(line, "amount", f"{path}.amount"), f"{path}.amount"),
                reference=v.opt_string(line, "reference", f"{path}.reference", 100),
            )
        )
    if st.get("balance") is not None:
        pr.balance = v.as_int(st["balance"], "statement.balance")
        if lines and sum(ln.amount for ln in built) != pr.balance:
            raise Invalid(
                "lines_do_not_match_balance",
                "The statement lines do not add up to statement.balance.",
                "statement.lines",
            )
        if pr.amount > pr.balance:
            raise Invalid(
                "amount_exceeds_balance",
                "amount (the amount due) is larger than statement.balance.",
                "amount",
            )
    return built


def _order(pr: PaymentRequest, merchant: Merchant, data: dict[str, Any]) -> list[OrderLine]:
    order = v.as_object(data, "order")
    v.no_unknown_fields(order, {"reference", "total", "lines"}, "order.")
    pr.order_reference = v.opt_string(order, "reference", "order.reference", 100)
    lines = v.as_list(order.get("lines", []), "order.lines", MAX_LINES)
    built: list[OrderLine] = []
    for i, raw in enumerate(lines):
        path = f"order.lines[{i}]"
        line = v.as_object(raw, path)
        v.no_unknown_fields(line, {"description", "quantity", "unit_amount"}, f"{path}.")
        quantity = v.as_int(line.get("quantity", 1), f"{path}.quantity")
        if not 0 < quantity <= v.MAX_QUANTITY:
            raise Invalid(
                "invalid_value",
                f"{path}.quantity must be from 1 to {v.MAX_QUANTITY}.",
                f"{path}.quantity",
            )
        unit = v.as_int(
            v.require(line, "unit_amount", f"{path}.unit_amount"), f"{path}.unit_amount"
        )
        if unit < 0:
            raise Invalid(
                "invalid_value", f"{path}.unit_amount must not be negative.", f"{path}.unit_amount"
            )
        built.append(
            OrderLine(
                position=i,
                description=v.as_string(
                    v.require(line, "description", f"{path}.description"),
                    f"{path}.description",
                    300,
                ),
                quantity=quantity,
                unit_amount=unit,
            )
        )
    lines_total = sum(ln.total for ln in built)
    if lines_total > v.MAX_AMOUNT:  # each line is in range, their sum need not be
        raise Invalid("invalid_value", "order.lines add up to too much.", "order.lines")
    if order.get("total") is not None:
        pr.order_total = v.as_amount(order["total"], "order.total")
        if lines and lines_total != pr.order_total:
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
    if pr.amount > pr.order_total:
        raise Invalid(
            "deposit_exceeds_total", "amount (the deposit) is larger than order.total.", "amount"
        )
    if pr.allow_full_payment:
        _ceiling_check(merchant, pr.order_total, "order.total")
    return built


def _wallet(pr: PaymentRequest, merchant: Merchant, data: dict[str, Any] | None) -> None:
    wallet = v.as_object(data if data is not None else {}, "wallet")
    v.no_unknown_fields(wallet, {"min_amount", "max_amount", "suggested"}, "wallet.")
    if pr.amount is not None:
        if wallet:
            raise Invalid(
                "invalid_value",
                "Give either amount (a fixed top-up) or wallet bounds, not both.",
                "wallet",
            )
        return
    minimum = minimum_for(merchant, merchant.currency)
    pr.wallet_min = v.as_amount(wallet.get("min_amount", minimum), "wallet.min_amount")
    _minimum_check(merchant, pr.wallet_min, "wallet.min_amount")
    pr.wallet_max = v.as_amount(wallet.get("max_amount", merchant.ceiling), "wallet.max_amount")
    _ceiling_check(merchant, pr.wallet_max, "wallet.max_amount")
    if pr.wallet_min > pr.wallet_max:
        raise Invalid(
            "invalid_bounds",
            "wallet.min_amount is larger than wallet.max_amount.",
            "wallet.min_amount",
        )
    suggested = v.as_list(wallet.get("suggested", []), "wallet.suggested", 6)
    pr.wallet_suggested = []
    for i, raw in enumerate(suggested):
        amount = v.as_amount(raw, f"wallet.suggested[{i}]")
        if not pr.wallet_min <= amount <= pr.wallet_max:
            raise Invalid(
                "amount_out_of_bounds",
                "Each suggested amount must lie between min_amount and max_amount.",
                f"wallet.suggested[{i}]",
            )
        pr.wallet_suggested.append(amount)


def _expiry(pr: PaymentRequest, data: dict[str, Any], now: datetime) -> datetime:
    latest = now + MAX_LIFETIME
    if data.get("expires_at") is not None:
        expires = v.as_datetime(data["expires_at"], "expires_at")
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
    merchant: Merchant, data: dict[str, Any], api_key_id: str | None = None
) -> PaymentRequest:
    """Validate ``data`` (the API body) and add the new request to the session (caller commits).

    Raises :class:`ApiError` subclasses (422 with a code and a field) for
    anything invalid; nothing is written then.
    """
    v.no_unknown_fields(data, TOP_FIELDS)
    kind_raw = v.require(data, "kind", "kind")
    if kind_raw not in {k.value for k in Kind}:
        raise Invalid(
            "invalid_kind", "kind must be statement, wallet_topup or order_deposit.", "kind"
        )
    kind = Kind(kind_raw)
    currency = v.require(data, "currency", "currency")
    if not isinstance(currency, str) or not is_supported_currency(currency.upper()):
        raise Invalid("unsupported_currency", "currency is not a known ISO 4217 code.", "currency")
    currency = currency.upper()
    if currency != merchant.currency:
        raise Invalid(
            "currency_not_enabled",
            f"This merchant charges in {merchant.currency} only.",
            "currency",
        )
    now = utcnow()
    pr = PaymentRequest(
        merchant=merchant,
        merchant_id=merchant.id,
        kind=kind.value,
        status=RequestStatus.OPEN.value,
        currency=currency,
        created_by_key_id=api_key_id,
        created_at=now,
        updated_at=now,
        wallet_suggested=[],
        metadata_={},
    )
    if data.get("amount") is not None:
        pr.amount = v.as_amount(data["amount"], "amount")
        _ceiling_check(merchant, pr.amount, "amount")
        _minimum_check(merchant, pr.amount, "amount")
    elif kind != Kind.WALLET_TOPUP:
        raise Invalid("missing_field", "amount is required.", "amount")
    pr.reference = v.opt_string(data, "reference", "reference", 100)
    pr.description = v.opt_string(data, "description", "description", 500)
    if data.get("customer") is not None:
        _customer(pr, data["customer"])
    if data.get("due_date") is not None:
        pr.due_date = v.as_date(data["due_date"], "due_date")
    if data.get("metadata") is not None:
        pr.metadata_ = v.as_metadata(data["metadata"], "metadata")
    pr.allow_partial = v.as_bool(data.get("allow_partial", False), "allow_partial")
    pr.allow_full_payment = v.as_bool(data.get("allow_full_payment", False), "allow_full_payment")
    if pr.allow_full_payment and kind != Kind.ORDER_DEPOSIT:
        raise Invalid(
            "invalid_value",
            "allow_full_payment applies to order deposits only.",
            "allow_full_payment",
        )
    if pr.allow_partial and kind == Kind.WALLET_TOPUP:
        raise Invalid(
            "invalid_value", "allow_partial does not apply to wallet top-ups.", "allow_partial"
        )
    for other in {"statement", "order", "wallet"} - {_section(kind)}:
        if data.get(other) is not None:
            raise Invalid("invalid_value", f"{other} does not apply to a {kind.value}.", other)
    lines: list[StatementLine] | list[OrderLine] = []
    if kind == Kind.STATEMENT:
        lines = _statement(pr, merchant, data.get("statement") or {})
    elif kind == Kind.ORDER_DEPOSIT:
        lines = _order(pr, merchant, v.require(data, "order", "order"))
    else:
        _wallet(pr, merchant, data.get("wallet"))
    pr.expires_at = _expiry(pr, data, now)
    send = v.as_list(data.get("send", []), "send", 2)
    for i, channel in enumerate(send):
        if channel not in ("email", "sms"):
            raise Invalid("invalid_channel", "send items are email or sms.", f"send[{i}]")
    db.session.add(pr)
    db.session.flush()
    if lines:
        _insert_lines(pr, lines)
    if send:
        from portal.delivery.services import send_link

        for i, channel in enumerate(dict.fromkeys(send)):
            try:
                send_link(pr, channel)
            except Invalid as exc:
                raise Invalid(exc.code, exc.message, f"send[{i}]") from None
    return pr


def _insert_lines(pr: PaymentRequest, lines: list[StatementLine] | list[OrderLine]) -> None:
    """Up to 500 lines in one executemany, not as ORM objects (a create's largest cost);
    the request's collection is filled from the same objects, so the answer shows them."""
    model = type(lines[0])
    columns = [c.key for c in model.__table__.columns if c.key != "id"]
    for line in lines:
        line.request_id = pr.id
    db.session.execute(insert(model), [{c: getattr(ln, c) for c in columns} for ln in lines])
    attribute = "statement_lines" if model is StatementLine else "order_lines"
    set_committed_value(pr, attribute, lines)


def _section(kind: Kind) -> str:
    return {Kind.STATEMENT: "statement", Kind.ORDER_DEPOSIT: "order", Kind.WALLET_TOPUP: "wallet"}[
        kind
    ]


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
        if status not in {s.value for s in RequestStatus}:
            raise Invalid("invalid_value", "status is not a known request status.", "status")
        query = query.where(PaymentRequest.status == status)
    if reference:
        query = query.where(PaymentRequest.reference == reference)
    if customer_reference:
        query = query.where(PaymentRequest.customer_reference == customer_reference)
    if starting_after:
        cursor = db.session.get(PaymentRequest, starting_after)
        if cursor is None or cursor.merchant_id != merchant.id:
            raise Invalid(
                "invalid_cursor", "starting_after is not one of your requests.", "starting_after"
            )
        query = query.where(
            (PaymentRequest.created_at < cursor.created_at)
            | ((PaymentRequest.created_at == cursor.created_at) & (PaymentRequest.id < cursor.id))
        )
    rows = db.session.scalars(
        query.order_by(PaymentRequest.created_at.desc(), PaymentRequest.id.desc()).limit(limit + 1)
    ).all()
    return list(rows[:limit]), len(rows) > limit


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
    db.session.flush()
    return pr


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


def void_customer_requests(merchant: Merchant, customer_reference: Any) -> list[str]:
    """Void every open request of one customer (lost phone, closed account). Caller commits."""
    ref = v.as_string(customer_reference, "customer_reference", 100)
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
    """Mark open requests past their expiry as expired, with their events. Commits."""
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
    db.session.commit()
    return count


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
