"""The payment provider interface; the rest of the portal never imports a provider SDK.

A provider is chosen by ``PORTAL_PAYMENT_PROVIDER`` (``sandbox`` or ``stripe``).
Each provider module registers a factory with :func:`register_provider`;
:func:`get_provider` imports the module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flask import current_app

if TYPE_CHECKING:
    from portal.merchants.models import Merchant
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


class WebhookRefused(Exception):
    """A webhook that is not the provider's (bad signature) or not an event: a 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class CheckoutPage:
    """A page of the provider's checkout, on the portal's own ``/p/…/checkout`` URLs:
    its template, what the template shows, and the origins its scripts, frames and
    forms need in the page's Content-Security-Policy (``script``, ``frame``,
    ``connect``, ``form_action``: space-separated origins)."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    csp: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass
class Submission:
    """What a form posted to a checkout page did: the provider's answer to apply (a charge,
    a 3-D Secure decision), a page to show instead (the form with its errors), or the
    next step's name (e.g. ``3ds``)."""

    state: ProviderPayment | None = None
    page: CheckoutPage | None = None
    next_step: str | None = None


@dataclass
class AccountStatus:
    """What the provider says of a merchant's own account (Stripe Connect): whether there is
    one (``account``: its id, None where the provider has no ids), whether it may take
    charges and receive payouts, and what the provider still needs from the shop."""

    connected: bool
    account: str | None = None
    charges_enabled: bool = False
    payouts_enabled: bool = False
    details_submitted: bool = False
    requirements_due: list[str] = field(default_factory=list)


class PaymentProvider(Protocol):
    name: str
    # (number, what it does) for the development start page; empty for a real provider.
    test_cards: tuple[tuple[str, str], ...]

    def prepare(self, payment: Payment, request: PaymentRequest) -> dict[str, Any]:
        """Create or reuse the provider side of an attempt; returns what the pay page needs,
        with the provider's id for the attempt as ``provider_payment_id``. The payment is
        not changed here: the caller records the id under the attempt's lock."""
        ...

    def retrieve(self, payment: Payment) -> ProviderPayment:
        """The provider's current view of the attempt (return page, reconciliation)."""
        ...

    def checkout_page(
        self, payment: Payment, request: PaymentRequest, step: str | None, prepared: dict[str, Any]
    ) -> CheckoutPage:
        """The checkout page of an open attempt (``step`` None: the first; ``prepared``: what
        :meth:`prepare` answered)."""
        ...

    def submit(self, payment: Payment, step: str | None, form: Mapping[str, str]) -> Submission:
        """A form of the checkout posted to the portal (the caller holds the attempt's lock
        and applies the answer): the sandbox's card form and 3-D Secure step."""
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

    def register_domain(self, domain: str, account: str | None) -> str | None:
        """Register ``domain`` for wallets (Apple Pay, Google Pay) on the platform
        (``account`` None) or a connected account; its id, or None where nothing is
        to register."""
        ...

    def onboarding_link(self, merchant: Merchant, return_url: str, refresh_url: str) -> str:
        """Where the shop's owner fills in its account at the provider (creating the account,
        and storing its id on the merchant with a flush, when it has none); the provider
        sends the owner back to ``return_url``, or to ``refresh_url`` once the link expired."""
        ...

    def account_status(self, merchant: Merchant) -> AccountStatus:
        """The merchant's account at the provider (``connected`` False: none yet)."""
        ...

    # The provider's own webhooks, at /webhooks/<name>: verified on the raw body, stored by
    # the event id (a repeat is acknowledged and ignored), then handled exactly once.
    webhooks: bool

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """The verified event, with a string ``id`` and ``type``; raises
        :class:`WebhookRefused` for anything else."""
        ...

    def handle_webhook(self, event: dict[str, Any]) -> str:
        """Apply one verified event (add and flush); returns a short outcome for the log."""
        ...


_FACTORIES: dict[str, Callable[[], PaymentProvider]] = {}
NAMES = ("sandbox", "stripe")  # the modules of portal.providers that are providers


def register_provider(name: str, factory: Callable[[], PaymentProvider]) -> None:
    _FACTORIES[name] = factory


def get_provider(name: str | None = None) -> PaymentProvider:
    """The configured provider (or the one named, e.g. the provider of an old payment)."""
    name = name or current_app.config["PORTAL_PAYMENT_PROVIDER"]
    if name not in _FACTORIES:
        if name not in NAMES:
            raise LookupError(f"no payment provider {name!r}")
        importlib.import_module(f"portal.providers.{name}")
    return _FACTORIES[name]()
