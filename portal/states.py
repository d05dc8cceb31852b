"""Statuses and the one table of allowed transitions per entity.

A late or duplicate provider event must never move a status backwards:
callers ask :func:`can_transition` or call :func:`transition`, which raises
:class:`InvalidTransition` for anything not in the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, ClassVar, Protocol


class RequestStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"
    EXPIRED = "expired"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class Kind(StrEnum):
    STATEMENT = "statement"
    WALLET_TOPUP = "wallet_topup"
    ORDER_DEPOSIT = "order_deposit"


class EventType(StrEnum):
    """What the merchant's ledger is told (docs/callbacks.md)."""

    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REFUNDED = "payment.refunded"
    REQUEST_PAID = "payment_request.paid"
    REQUEST_EXPIRED = "payment_request.expired"
    REQUEST_VOIDED = "payment_request.voided"
    # The customer of a closed (expired or void) link asked for a new one.
    RENEWAL_REQUESTED = "payment_request.renewal_requested"
    REQUEST_REMINDER_SENT = "payment_request.reminder_sent"


class JobStatus(StrEnum):
    """A job of the queue (portal/jobs/)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # gave up after its last attempt (dead letter)


class LinkDeliveryStatus(StrEnum):
    """A link sent to the customer by e-mail or SMS (portal/delivery/)."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    # A reminder the request's payment, voiding or expiry overtook before it went out.
    CANCELED = "canceled"


class ReminderStatus(StrEnum):
    """One scheduled reminder of a payment request (portal/reminders/)."""

    SCHEDULED = "scheduled"
    SENT = "sent"  # sent on at least one channel (its deliveries say how it went)
    SKIPPED = "skipped"  # due, but not sent: ``reason`` says why


class CallbackStatus(StrEnum):
    """One event's delivery to one ledger endpoint (portal/ledger/callbacks.py)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # out of retries or endpoint gone: visible to support, replayable


class RefundSource(StrEnum):
    MERCHANT = "merchant"  # the API
    SUPPORT = "support"  # an admin in the support console
    PROVIDER = "provider"  # made in the provider's dashboard, learnt from its event
    AUTOMATIC = "automatic"  # money for a closed attempt or a request no longer payable


# A payment attempt that may still take money, and one whose money was taken.
OPEN_ATTEMPT = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
SETTLED = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
PAYABLE = (RequestStatus.OPEN, RequestStatus.PARTIALLY_PAID)


def sql_in(column: str, values: Iterable[str]) -> str:
    """``status IN ('a', 'b')`` for CHECK constraints and partial indexes (fixed values)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


REQUEST_TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.OPEN: frozenset(
        {
            RequestStatus.PARTIALLY_PAID,
            RequestStatus.PAID,
            RequestStatus.VOID,
            RequestStatus.EXPIRED,
        }
    ),
    RequestStatus.PARTIALLY_PAID: frozenset({RequestStatus.PAID}),
    RequestStatus.PAID: frozenset(),
    RequestStatus.VOID: frozenset(),
    RequestStatus.EXPIRED: frozenset(),
}

PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset(
        {
            PaymentStatus.PROCESSING,
            PaymentStatus.SUCCEEDED,
            PaymentStatus.FAILED,
            PaymentStatus.CANCELED,
        }
    ),
    PaymentStatus.PROCESSING: frozenset(
        {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED}
    ),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.PARTIALLY_REFUNDED: frozenset(
        {PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
    ),
    # The provider took money for an attempt the portal had closed (a stale tab, a
    # confirmation that crossed the cancel): the money is real, so is the success.
    PaymentStatus.FAILED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.CANCELED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.REFUNDED: frozenset(),
}


class InvalidTransition(Exception):
    """A status change the table does not allow."""

    def __init__(self, entity: str, current: str, new: str) -> None:
        super().__init__(f"{entity} cannot go from {current} to {new}")
        self.entity, self.current, self.new = entity, current, new


class DoublePayment(InvalidTransition):
    """A payment for a request that is already paid."""


# The transition table of each status type; a model names its status type in
# ``statuses`` (``PaymentRequest.statuses = RequestStatus``) and the table follows.
TRANSITIONS: dict[type[StrEnum], Mapping[Any, frozenset[Any]]] = {
    RequestStatus: REQUEST_TRANSITIONS,
    PaymentStatus: PAYMENT_TRANSITIONS,
}


class Stateful(Protocol):
    statuses: ClassVar[type[StrEnum]]
    status: str


def can_transition(obj: Stateful, new: str) -> bool:
    statuses = type(obj).statuses
    return new in TRANSITIONS[statuses][statuses(obj.status)]


def transition(obj: Stateful, new: str) -> None:
    """Move ``obj`` to ``new`` or raise :class:`InvalidTransition`."""
    if not can_transition(obj, new):
        entity = type(obj).__name__
        if type(obj).statuses is RequestStatus and obj.status == RequestStatus.PAID:
            raise DoublePayment(entity, obj.status, new)
        raise InvalidTransition(entity, obj.status, new)
    obj.status = new
