"""The payment provider interface; the rest of the portal never imports a provider SDK.

A provider is chosen by ``PORTAL_PAYMENT_PROVIDER`` (``sandbox`` or ``stripe``).
Each provider module registers a factory with :func:`register_provider`;
:func:`get_provider` imports the module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flask import current_app

if TYPE_CHECKING:
    from portal.payment_requests.models import PaymentRequest
    from portal.payments.models import Payment


@dataclass
class ProviderPayment:
    """What the provider says about one payment attempt (server-side truth)."""

    # A PaymentStatus value, or "requires_action" (e.g. 3-D Secure pending).
    status: str
    amount: int
    currency: str
    provider_payment_id: str | None = None
    charge_id: str | None = None
    method_type: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    client_secret: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """The provider could not be reached or refused the call; nothing was charged."""


class PaymentProvider(Protocol):
    name: str

    def prepare(self, payment: Payment, request: PaymentRequest) -> dict[str, Any]:
        """Create or reuse the provider side of an attempt; returns what the pay page needs,
        with the provider's id for the attempt as ``provider_payment_id``. The payment is
        not changed here: the caller records the id under the attempt's lock."""
        ...

    def retrieve(self, payment: Payment) -> ProviderPayment:
        """The provider's current view of the attempt (return page, reconciliation)."""
        ...

    def confirm(self, payment: Payment, details: Any) -> ProviderPayment:
        """Pay the attempt with what the customer's browser collected (a card, a payment
        method); the caller holds the attempt's lock and applies the answer."""
        ...

    def authenticate(self, payment: Payment, approved: bool) -> ProviderPayment:
        """The customer's answer to a 3-D Secure step the provider asked for."""
        ...

    def cancel(self, payment: Payment) -> ProviderPayment:
        """Make the attempt unpayable at the provider. Returns the provider's state: canceled,
        or succeeded/processing when it was too late (the caller applies that instead).
        Raises :class:`ProviderError` when the provider cannot say."""
        ...

    def refund(self, payment: Payment, amount: int, idempotency_key: str) -> str:
        """Refund ``amount`` to the original payment method; returns the provider's refund id."""
        ...

    def minimum_charge(self, currency: str) -> int:
        """The smallest amount (minor units) one charge may be in ``currency``."""
        ...


_FACTORIES: dict[str, Callable[[], PaymentProvider]] = {}


def register_provider(name: str, factory: Callable[[], PaymentProvider]) -> None:
    _FACTORIES[name] = factory


def get_provider(name: str | None = None) -> PaymentProvider:
    """The configured provider (or the one named, e.g. the provider of an old payment)."""
    name = name or current_app.config["PORTAL_PAYMENT_PROVIDER"]
    if name not in _FACTORIES:
        importlib.import_module(f"portal.providers.{name}")
    return _FACTORIES[name]()
