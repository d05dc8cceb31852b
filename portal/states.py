"""Statuses and the one table of allowed transitions per entity.

A late or duplicate provider event must never move a status backwards:
callers ask :func:`can_transition` or call :func:`transition`, which raises
:class:`InvalidTransition` for anything not in the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol


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


class _HasStatus(Protocol):
    status: str


def _table(obj: _HasStatus) -> tuple[str, dict]:
    name = type(obj).__name__
    if name == "PaymentRequest":
        return name, REQUEST_TRANSITIONS
    if name == "Payment":
        return name, PAYMENT_TRANSITIONS
    raise TypeError(f"no transition table for {name}")


def can_transition(obj: _HasStatus, new: str) -> bool:
    _, table = _table(obj)
    return new in table[type(next(iter(table)))(obj.status)]


def transition(obj: _HasStatus, new: str) -> None:
    """Move ``obj`` to ``new`` or raise :class:`InvalidTransition`."""
    entity, _ = _table(obj)
    if not can_transition(obj, new):
        if entity == "PaymentRequest" and obj.status == RequestStatus.PAID:
            raise DoublePayment(entity, obj.status, new)
        raise InvalidTransition(entity, obj.status, new)
    obj.status = new
