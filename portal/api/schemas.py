"""The API contract: one pydantic model per request and response shape of ``/api/v1``.

The same models validate what merchants send, shape what the API answers and
generate the OpenAPI document (:mod:`portal.api.contract`): a limit changed
here changes all three. Each constraint carries the error code a merchant
sees when it is broken (:func:`coded`), so the codes of the contract
(``amount_below_minimum``, ``too_long``, …) and their ``field`` paths stay
what docs/api.md says. Business rules that need the merchant or the clock
(ceiling, minimum, totals, expiry) stay in the services.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, TypeAlias
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from portal.money import is_supported_currency
from portal.phones import e164, is_country
from portal.reminders.schedule import RULE_PATTERN, parse_rule
from portal.states import EventType, PaymentStatus, RequestStatus

MAX_AMOUNT = 10**15  # in minor units: more than any payment, well inside a 64-bit column
MAX_QUANTITY = 1_000_000  # of one order line
MAX_LINES = 500
LOCALES = ("en", "fr", "nl", "de")
CHANNELS = ("email", "sms")


def coded(**codes: str) -> WrapValidator:
    """Re-issue the errors of the constraints inside it under the API's codes, by pydantic
    error type: ``coded(greater_than_equal="amount_below_minimum")``."""

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            code = codes.get(first["type"])
            if code is None or first["loc"]:  # a nested error keeps its own code and place
                raise
            raise PydanticCustomError(code, first["msg"]) from None

    return WrapValidator(wrap)


def _json_integer(value: Any) -> Any:
    """JSON has one kind of number: 1250.0 is the integer 1250 (as JSON Schema means it)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _checked(
    code: str, check: Callable[[Any], Any], message: str, *, not_text: str = "invalid_type"
) -> BeforeValidator:
    """A string turned by ``check`` (which raises ValueError when it is wrong)."""

    def run(value: Any) -> Any:
        if not isinstance(value, str):
            raise PydanticCustomError(not_text, "must be a string")
        try:
            return check(value)
        except ValueError:
            raise PydanticCustomError(code, message) from None

    return BeforeValidator(run)


# --- values ---------------------------------------------------------------------------

Amount = Annotated[
    StrictInt,
    Field(ge=1, le=MAX_AMOUNT, description="Minor units (cents)."),
    coded(greater_than_equal="amount_below_minimum", less_than_equal="invalid_value"),
    BeforeValidator(_json_integer),
]
SignedAmount = Annotated[
    StrictInt,
    Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="Minor units; negative for credits."),
    coded(greater_than_equal="invalid_value", less_than_equal="invalid_value"),
    BeforeValidator(_json_integer),
]
Quantity = Annotated[
    StrictInt,
    Field(ge=1, le=MAX_QUANTITY),
    coded(greater_than_equal="invalid_value", less_than_equal="invalid_value"),
    BeforeValidator(_json_integer),
]
UnitAmount = Annotated[
    StrictInt,
    Field(ge=0, le=MAX_AMOUNT, description="Minor units."),
    coded(greater_than_equal="invalid_value", less_than_equal="invalid_value"),
    BeforeValidator(_json_integer),
]


def _text(max_length: int) -> Any:
    """A string, trimmed, not empty, at most ``max_length`` characters."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length),
        coded(string_too_short="invalid_value"),
    ]


Text100: TypeAlias = _text(100)  # type: ignore[valid-type]
Text200: TypeAlias = _text(200)  # type: ignore[valid-type]
Text300: TypeAlias = _text(300)  # type: ignore[valid-type]
Text500: TypeAlias = _text(500)  # type: ignore[valid-type]


def _date(value: str) -> date:
    return date.fromisoformat(value)


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("no zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        raise ValueError("out of range") from None


IsoDate = Annotated[date, _checked("invalid_date", _date, "must be a date (YYYY-MM-DD)")]
AwareDateTime = Annotated[
    datetime,
    _checked("invalid_datetime", _aware, "must be an ISO 8601 time with a zone (e.g. Z)"),
]


def normalise_email(value: str) -> str:
    """An email address as the portal keeps it (raises ValueError when it is none)."""
    value = value.strip()
    if not value or len(value) > 254:
        raise ValueError(value)
    try:
        # Lower-cased so that support finds it by an indexed equality, whatever was typed.
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise ValueError(value) from None


def normalise_phone(value: str, region: str | None = None) -> str:
    """A phone number normalised to E.164 (``+32470123456``); ValueError when it is none."""
    value = value.strip()
    if not value or len(value) > 32:
        raise ValueError(value)
    number = e164(value, region, dialable=True)
    if number is None:
        raise ValueError(value)
    return number


def _currency(value: str) -> str:
    code = value.upper()
    if not is_supported_currency(code):
        raise ValueError(value)
    return code


def _locale(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("-", "_").split("_")[0].lower()
    return value


Email = Annotated[
    str,
    Field(json_schema_extra={"format": "email", "maxLength": 254}),
    _checked("invalid_email", normalise_email, "is not a valid email address"),
]
Phone = Annotated[
    str,
    Field(description="Normalised to E.164."),
    _checked("invalid_phone", normalise_phone, "is not a valid phone number"),
]
Currency = Annotated[
    str,
    Field(description="ISO 4217; the merchant's currency."),
    _checked(
        "unsupported_currency",
        _currency,
        "is not a known ISO 4217 code",
        not_text="unsupported_currency",
    ),
]
Locale = Annotated[
    Literal["en", "fr", "nl", "de"],
    coded(literal_error="unsupported_locale"),
    BeforeValidator(_locale),
]
Channel = Annotated[Literal["email", "sms"], coded(literal_error="invalid_channel")]
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=40), coded(
            string_too_short="invalid_value", string_too_long="invalid_value")],
        Annotated[str, StringConstraints(max_length=500), coded(string_too_long="too_long")],
    ],
    Field(max_length=50, description="String values, echoed in callbacks."),
]  # fmt: skip


class Contract(BaseModel):
    """Unknown fields are refused; types are strict (no "1250" for 1250)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --- what merchants send ----------------------------------------------------------------


class Customer(Contract):
    name: Text200 | None = None
    email: Email | None = None
    phone: Phone | None = None
    locale: Locale | None = None
    reference: Text100 | None = None


class StatementLine(Contract):
    date: IsoDate | None = None
    description: Text300
    amount: SignedAmount
    reference: Text100 | None = None


class Statement(Contract):
    period_start: IsoDate | None = None
    period_end: IsoDate | None = None
    balance: SignedAmount | None = Field(
        None, description="Minor units; amount must not exceed it."
    )
    lines: Annotated[list[StatementLine], Field(max_length=MAX_LINES)] = []


class OrderLine(Contract):
    description: Text300
    quantity: Quantity = 1
    unit_amount: UnitAmount


class Order(Contract):
    reference: Text100 | None = None
    total: Amount | None = None
    lines: Annotated[list[OrderLine], Field(max_length=MAX_LINES)] = []


class Wallet(Contract):
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    suggested: Annotated[list[Amount], Field(max_length=6)] = []


NotHere = Annotated[
    None, coded(none_required="invalid_value"), Field(description="Not for this kind.")
]
NoFullPayment = Annotated[
    Literal[False], coded(literal_error="invalid_value"), Field(description="Deposits only.")
]
NoPartial = Annotated[
    Literal[False], coded(literal_error="invalid_value"), Field(description="Not for top-ups.")
]


class _Create(Contract):
    # In the order the fields are checked (each kind declares its own kind and amount).
    kind: str
    currency: Currency
    amount: Amount | None = None
    reference: Text100 | None = None
    description: Text500 | None = None
    customer: Customer | None = None
    due_date: IsoDate | None = None
    expires_at: AwareDateTime | None = None
    metadata: Metadata | None = None
    send: Annotated[list[Channel], Field(max_length=2)] = []
    reminders: StrictBool = Field(
        True, description="false: no reminders for this request (docs/reminders.md)."
    )


class CreateStatement(_Create):
    kind: Literal["statement"]
    amount: Amount = Field(description="Minor units: the amount due (≤ statement.balance).")
    allow_partial: StrictBool = False
    allow_full_payment: NoFullPayment = False
    statement: Statement | None = None
    order: NotHere = None
    wallet: NotHere = None


class CreateWalletTopup(_Create):
    kind: Literal["wallet_topup"]
    amount: Amount | None = Field(None, description="A fixed top-up; omit to let them choose.")
    allow_partial: NoPartial = False
    allow_full_payment: NoFullPayment = False
    reusable: StrictBool = Field(
        False,
        description="Stays open for repeated payments, each its own payment request (a "
        "child with parent_request_id), until voided; no expires_at.",
    )
    wallet: Wallet | None = None
    statement: NotHere = None
    order: NotHere = None


class CreateOrderDeposit(_Create):
    kind: Literal["order_deposit"]
    amount: Amount = Field(description="Minor units: the deposit (≤ order.total).")
    allow_partial: StrictBool = False
    allow_full_payment: StrictBool = False
    order: Order
    statement: NotHere = None
    wallet: NotHere = None


AnyCreate = CreateStatement | CreateWalletTopup | CreateOrderDeposit


class CreatePaymentRequest(RootModel[Annotated[AnyCreate, Field(discriminator="kind")]]):
    """The body of ``POST /payment-requests``: one shape per kind."""


class VoidCustomer(Contract):
    customer_reference: Text100


class CustomerReference(Contract):
    """A customer's reference in a path (``/customers/{reference}/link``)."""

    reference: Text100


class Send(Contract):
    channel: Channel
    to: str | None = Field(None, description="Overrides the customer's email or phone.")


class CreateRefund(Contract):
    amount: Amount | None = Field(None, description="Minor units; omit to refund what remains.")
    reason: Text300 | None = None


# --- what the API answers ---------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ISO 8601 in UTC with a Z, to the second, as every time of the API reads.
Timestamp = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str),
    Field(json_schema_extra={"format": "date-time"}),
]


def prefixed(prefix: str) -> Any:
    return Annotated[str, Field(pattern=f"^{prefix}_")]


class Answer(BaseModel):
    """An object the API returns: every property is always there (null when unknown)."""

    model_config = ConfigDict(extra="forbid", json_schema_mode_override="serialization")


class CustomerOut(Answer):
    name: str | None
    email: str | None
    phone: str | None
    locale: str | None
    reference: str | None


class LinkDelivery(Answer):
    id: prefixed("ld")  # type: ignore[valid-type]
    object: Literal["link_delivery"] = "link_delivery"
    channel: Literal["email", "sms"]
    destination: str = Field(description="Masked address or number.")
    status: Literal["queued", "sent", "failed", "canceled"]
    attempts: int
    provider_message_id: str | None
    error: str | None
    created_at: Timestamp
    sent_at: Timestamp | None


class Opens(Answer):
    count: int
    first_opened_at: Timestamp | None
    last_opened_at: Timestamp | None


class StatementLineOut(Answer):
    date: date | None
    description: str
    amount: int
    reference: str | None


class StatementOut(Answer):
    period_start: date | None
    period_end: date | None
    balance: int | None
    lines: list[StatementLineOut]


class OrderLineOut(Answer):
    description: str
    quantity: int
    unit_amount: int


class OrderOut(Answer):
    reference: str | None
    total: int
    lines: list[OrderLineOut]


class WalletOut(Answer):
    """Bounds of a customer-chosen top-up (null for a fixed amount)."""

    min_amount: int | None
    max_amount: int | None
    suggested: list[int]


class _PaymentRequest(Answer):
    id: prefixed("pr")  # type: ignore[valid-type]
    object: Literal["payment_request"] = "payment_request"
    kind: str
    status: RequestStatus
    currency: str
    amount: int | None
    amount_paid: int
    amount_due: int | None
    amount_refunded: int
    reference: str | None
    description: str | None
    customer: CustomerOut
    due_date: date | None
    expires_at: Timestamp | None = Field(description="Null for a reusable top-up: no expiry.")
    metadata: dict[str, str]
    allow_partial: bool
    reusable: bool = Field(description="A reusable top-up link (wallet_topup only).")
    parent_request_id: str | None = Field(
        description="For a payment made through a reusable link: that link's request."
    )
    reminders: bool = Field(description="Whether the merchant's reminders apply.")
    url: str = Field(json_schema_extra={"format": "uri"}, description="The customer's link.")
    qr_code_url: str = Field(json_schema_extra={"format": "uri"})
    created_at: Timestamp
    paid_at: Timestamp | None
    voided_at: Timestamp | None
    opens: Opens
    deliveries: list[LinkDelivery]


class StatementRequest(_PaymentRequest):
    kind: Literal["statement"]
    statement: StatementOut


class WalletTopupRequest(_PaymentRequest):
    kind: Literal["wallet_topup"]
    wallet: WalletOut


class OrderDepositRequest(_PaymentRequest):
    kind: Literal["order_deposit"]
    allow_full_payment: bool
    order: OrderOut


class PaymentRequest(
    RootModel[
        Annotated[
            StatementRequest | WalletTopupRequest | OrderDepositRequest,
            Field(discriminator="kind"),
        ]
    ]
):
    """A payment request, with the section of its kind."""


class PaymentRequestList(Answer):
    object: Literal["list"] = "list"
    data: list[PaymentRequest]
    has_more: bool
    next_starting_after: str | None


class CustomerLink(Answer):
    object: Literal["customer_link"] = "customer_link"
    customer_reference: str
    url: str = Field(description="The account page: every open request of this customer.")
    currency: str = Field(description="What the page pays together; other currencies are "
                          "listed with their own links.")  # fmt: skip
    open_requests: list[str] = Field(description="Ids of the requests the page shows now.")


class VoidResult(Answer):
    object: Literal["void_result"] = "void_result"
    count: int
    ids: list[str]


class Refund(Answer):
    id: prefixed("re")  # type: ignore[valid-type]
    object: Literal["refund"] = "refund"
    payment_id: prefixed("pay")  # type: ignore[valid-type]
    amount: int
    currency: str
    status: Literal["succeeded"]
    payment_status: Literal["partially_refunded", "refunded"]
    payment_amount_refunded: int
    created_at: Timestamp


class Event(Answer):
    id: prefixed("evt")  # type: ignore[valid-type]
    type: EventType
    sequence: int = Field(description="Per merchant, strictly increasing.")
    created_at: Timestamp
    data: dict[str, Any]


class EventList(Answer):
    object: Literal["list"] = "list"
    data: list[Event]
    has_more: bool
    next_starting_after: str | None


class CallbackDelivery(Answer):
    id: prefixed("del")  # type: ignore[valid-type]
    object: Literal["callback_delivery"] = "callback_delivery"
    event_id: prefixed("evt")  # type: ignore[valid-type]
    endpoint_id: prefixed("we")  # type: ignore[valid-type]
    status: Literal["pending", "succeeded", "dead"]
    attempts: int
    next_attempt_at: Timestamp | None


class CallbackDeliveryList(Answer):
    object: Literal["list"] = "list"
    data: list[CallbackDelivery]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class Error(BaseModel):
    error: ErrorDetail


# --- query strings ------------------------------------------------------------------------


def _query_int(value: Any) -> Any:
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > 9:
            raise PydanticCustomError("invalid_value", "must be a whole number")
        return int(value)
    return value


def page_size(default: int, most: int) -> Any:
    return Annotated[
        StrictInt,
        Field(ge=1, le=most, description=f"Page size ({default}, at most {most})."),
        coded(greater_than_equal="invalid_value", less_than_equal="invalid_value"),
        BeforeValidator(_query_int),
    ]


class Query(BaseModel):
    """Query parameters: values are strings on the wire; an empty one is as if absent."""

    model_config = ConfigDict(extra="ignore")


class CardQuery(Query):
    size: Literal["a6", "card"] = Field(
        "a6",
        description="a6 (105 x 148 mm), or card (85.6 x 54 mm, a credit card's size).",
    )
    locale: Literal["en", "fr", "nl", "de"] | None = Field(
        None, description="The card's language (the merchant's default when omitted)."
    )


class ListPaymentRequests(Query):
    status: Annotated[RequestStatus, coded(enum="invalid_value")] | None = Field(
        None, description="Only this status."
    )
    reference: str | None = Field(None, description="Only this merchant reference.")
    customer_reference: str | None = Field(None, description="Only this customer.")
    limit: page_size(20, 100) = 20  # type: ignore[valid-type]
    starting_after: str | None = Field(None, description="The last id of the previous page.")


class ListEvents(Query):
    starting_after: str | None = Field(None, description="The last event id you have.")
    limit: page_size(50, 500) = 50  # type: ignore[valid-type]
    type: Annotated[EventType, coded(enum="invalid_value")] | None = Field(
        None, description="Only this event type."
    )


# --- payments and the merchant's own settings (issue 15) ---------------------------------


class ListPayments(Query):
    status: Annotated[PaymentStatus, coded(enum="invalid_value")] | None = Field(
        None, description="Only this status."
    )
    request_id: str | None = Field(None, description="Only the payments of this request.")
    limit: page_size(20, 100) = 20  # type: ignore[valid-type]
    starting_after: str | None = Field(None, description="The last id of the previous page.")


class Payment(Answer):
    id: prefixed("pay")  # type: ignore[valid-type]
    object: Literal["payment"] = "payment"
    request_id: prefixed("pr")  # type: ignore[valid-type]
    amount: int
    currency: str
    status: PaymentStatus
    amount_refunded: int
    method: str | None = Field(description="card, ideal, bancontact, sepa_debit, …")
    card_brand: str | None
    card_last4: str | None
    receipt_number: str | None
    created_at: Timestamp
    succeeded_at: Timestamp | None


class PaymentList(Answer):
    object: Literal["list"] = "list"
    data: list[Payment]
    has_more: bool
    next_starting_after: str | None


class RefundList(Answer):
    object: Literal["list"] = "list"
    data: list[Refund]


def _rule(value: str) -> str:
    try:
        parse_rule(value)
    except ValueError:
        raise PydanticCustomError("invalid_reminder_rule", "is not a reminder rule") from None
    return value


Hour = Annotated[
    StrictInt, Field(ge=0, le=23, description="A whole hour of the merchant's clock (0-23)."),
    coded(greater_than_equal="invalid_hour", less_than_equal="invalid_hour"),
]  # fmt: skip
ReminderRule = Annotated[
    str,
    Field(pattern=RULE_PATTERN, max_length=10,
          description="due-N / due+N (N days before / after the due date, 0-60), or "
          "expiry-N (N days before the link expires, 1-60)."),
    coded(string_pattern_mismatch="invalid_reminder_rule"),
    AfterValidator(_rule),
]  # fmt: skip


class QuietHours(Contract):
    start: Hour = Field(description="No reminder from this hour… (21)")
    end: Hour = Field(description="…until this hour (8); equal to start: no quiet hours.")


class ReminderSettings(Contract):
    """The merchant's reminders, the same shape read and written (``PATCH`` replaces it
    whole); sent at 09:00 on the merchant's clock, after the quiet hours if they cover it."""

    schedule: Annotated[list[ReminderRule], Field(max_length=10)]
    channels: Annotated[list[Channel], Field(max_length=2)] = Field(
        description="The customer's contacts reminded (email, sms); empty: no reminders."
    )
    quiet_hours: QuietHours


class Merchant(Answer):
    id: prefixed("mer")  # type: ignore[valid-type]
    object: Literal["merchant"] = "merchant"
    name: str
    display_name: str
    currency: str
    default_locale: str
    ceiling: int = Field(description="Largest amount of any request, in minor units.")
    min_payment: int | None
    accent_color: str
    logo_url: str | None
    support_email: str | None
    support_phone: str | None
    embed_origins: list[str]
    stripe_account: str | None
    country: str
    time_zone: str
    reminders: ReminderSettings
    daily_digest: bool = Field(
        description="A morning e-mail to the owners with yesterday's payments and refunds."
    )


def _country(value: str) -> str:
    if not is_country(value.upper()):
        raise ValueError(value)
    return value.upper()


def _time_zone(value: str) -> str:
    if value not in available_timezones():
        raise ValueError(value)
    return value


Country = Annotated[
    str,
    Field(description="ISO 3166-1 alpha-2; national phone numbers parse with it."),
    _checked("invalid_country", _country, "is not a country code (BE, FR, NL…)"),
]
TimeZone = Annotated[
    str,
    Field(description="IANA time zone (Europe/Brussels)."),
    _checked("invalid_time_zone", _time_zone, "is not an IANA time zone"),
]
Origin = Annotated[
    str, Field(max_length=200, description="An https origin, e.g. https://shop.example.com.")
]


class UpdateMerchant(Contract):
    """The settings a merchant changes itself; absent fields stay as they are."""

    display_name: Text200 | None = None
    support_email: Email | None = None
    support_phone: Phone | None = None
    default_locale: Locale | None = None
    accent_color: Annotated[
        str, Field(pattern=r"^#[0-9a-fA-F]{6}$", description="#rrggbb; its button text "
                   "(white or near black) must pass WCAG AA (4.5:1)."),
        coded(string_pattern_mismatch="invalid_colour"),
    ] | None = None  # fmt: skip
    embed_origins: Annotated[list[Origin], Field(max_length=20)] | None = None
    country: Country | None = None
    time_zone: TimeZone | None = None
    ceiling: Annotated[
        int, Field(gt=0, le=MAX_AMOUNT, description="Largest amount of any request, in minor "
                   "units; at most the operator's maximum (PORTAL_MAX_CEILING).")
    ] | None = None  # fmt: skip
    reminders: ReminderSettings | None = None
    daily_digest: bool | None = Field(
        None,
        description="Yesterday's payments and refunds by e-mail each morning (the "
        "merchant's time zone); off by default.",
    )


CallbackUrl = Annotated[
    str,
    Field(max_length=2000, pattern=r"^https?://[^\s/?#]+(/\S*)?$",
          description="https, public address (checked again at every send)."),
    coded(string_pattern_mismatch="unsafe_url", string_too_long="too_long"),
]  # fmt: skip
EventTypes = Annotated[
    list[Annotated[str, Field(max_length=60, json_schema_extra={"enum": list(EventType)})]],
    Field(max_length=20, description="Only these event types; empty: every type."),
]


class WebhookEndpoint(Answer):
    id: prefixed("we")  # type: ignore[valid-type]
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    enabled: bool
    disabled_reason: str | None
    event_types: list[str]
    created_at: Timestamp
    previous_secret_valid_until: Timestamp | None = Field(
        description="During a rotation the previous secret also signs until then."
    )
    secret: str | None = Field(
        None, description="The whsec_ signing secret: only in the answer that made it."
    )


class WebhookEndpointList(Answer):
    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]


class CreateWebhookEndpoint(Contract):
    url: CallbackUrl
    event_types: EventTypes = []


class UpdateWebhookEndpoint(Contract):
    url: CallbackUrl | None = None
    event_types: EventTypes | None = None
    enabled: StrictBool | None = None


class RotateWebhookSecret(Contract):
    overlap_hours: Annotated[
        StrictInt, Field(ge=0, le=168, description="Hours both secrets sign (24)."),
        coded(greater_than_equal="invalid_value", less_than_equal="invalid_value"),
    ] = 24  # fmt: skip


class Reconciliation(Query):
    since: IsoDate | None = Field(None, description="First day (UTC), included; 30 days ago.")
    until: IsoDate | None = Field(None, description="Last day (UTC), included; today.")


class ReconciliationTotals(Answer):
    payments: int = Field(description="Sum of the payment rows (payment.succeeded events).")
    refunds: int = Field(description="Sum of the refund rows, negative (payment.refunded).")
    net: int


class ReconciliationAnswer(Answer):
    object: Literal["reconciliation"] = "reconciliation"
    since: date
    until: date
    currency: str
    totals: ReconciliationTotals
    csv: str = Field(description="The records, one CSV row each (docs/api.md).")


class DeletedWebhookEndpoint(Answer):
    id: prefixed("we")  # type: ignore[valid-type]
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    deleted: Literal[True] = True


class WebhookTest(Answer):
    object: Literal["webhook_test"] = "webhook_test"
    id: str = Field(description="The test event's webhook-id (evt_test_…).")
    endpoint_id: prefixed("we")  # type: ignore[valid-type]
    status: Literal["queued"] = "queued"
