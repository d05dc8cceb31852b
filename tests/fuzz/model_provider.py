"""A payment provider that keeps its own books, for the model-based money test.

It behaves as Stripe does where it matters to money: one intent per attempt
(idempotent by the portal's payment id), a canceled intent can never be charged,
a succeeded one cannot be canceled, refunds are capped at what was taken, a
refund's idempotency key refunds once, and every change is also reported as an
event that the test delivers late, twice or out of order. ``taken`` and
``refunded`` are the provider's truth the portal's books must match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal.providers.base import ProviderError, ProviderPayment, register_provider

MINIMUM = 50


@dataclass
class Intent:
    id: str
    payment_id: str
    amount: int
    currency: str
    status: str = "requires_payment_method"
    taken: int = 0
    refunded: int = 0
    # A confirmation on its way that reaches the provider before the next cancel does.
    crossing: str | None = None


@dataclass
class Books:
    intents: dict[str, Intent] = field(default_factory=dict)
    by_payment: dict[str, str] = field(default_factory=dict)
    refund_keys: dict[str, str] = field(default_factory=dict)
    # Events not delivered yet: (payment id, what the provider said then).
    events: list[tuple[str, ProviderPayment]] = field(default_factory=list)

    def state(self, intent: Intent, status: str | None = None, **extra: Any) -> ProviderPayment:
        portal_status = status or {
            "succeeded": "succeeded",
            "canceled": "canceled",
            "requires_action": "requires_action",
            "processing": "processing",
        }.get(intent.status, "pending")
        return ProviderPayment(
            status=portal_status, amount=intent.amount, currency=intent.currency,
            provider_payment_id=intent.id, method_type="card", card_brand="visa",
            card_last4="4242", **extra,
        )  # fmt: skip

    def emit(self, intent: Intent, state: ProviderPayment) -> ProviderPayment:
        self.events.append((intent.payment_id, state))
        return state

    # --- what the customer's browser does at the provider, past the portal ------------

    def confirm(self, intent: Intent, card: str) -> ProviderPayment:
        if intent.status not in ("requires_payment_method",):
            return self.state(intent)  # canceled, succeeded, waiting for 3-D Secure: no charge
        if card == "decline":
            return self.emit(intent, self.state(intent, "failed", failure_code="card_declined"))
        if card == "3ds":
            intent.status = "requires_action"
            return self.emit(intent, self.state(intent))
        if card == "sepa":  # a debit: processing until the bank answers
            intent.status = "processing"
            return self.emit(intent, self.state(intent))
        intent.status, intent.taken = "succeeded", intent.amount
        return self.emit(intent, self.state(intent))

    def authenticate(self, intent: Intent, approved: bool) -> ProviderPayment:
        if intent.status != "requires_action":
            return self.state(intent)
        if not approved:
            intent.status = "requires_payment_method"
            state = self.state(intent, "failed", failure_code="authentication_failed")
            return self.emit(intent, state)
        intent.status, intent.taken = "succeeded", intent.amount
        return self.emit(intent, self.state(intent))

    def bank_answers(self, intent: Intent, paid: bool) -> None:
        if intent.status != "processing":
            return
        if paid:
            intent.status, intent.taken = "succeeded", intent.amount
            self.emit(intent, self.state(intent))
        else:
            intent.status = "requires_payment_method"
            self.emit(intent, self.state(intent, "failed", failure_code="debit_not_authorized"))

    def dashboard_refund(self, intent: Intent, amount: int) -> None:
        """A refund made in the provider's dashboard: reported by its running total."""
        amount = min(amount, intent.taken - intent.refunded)
        if amount > 0:
            intent.refunded += amount
            self.events.append((intent.payment_id, ProviderPayment(
                status="refund_total", amount=intent.refunded, currency=intent.currency,
            )))  # fmt: skip


BOOKS = Books()


class ModelProvider:
    name = "model"

    def _intent(self, payment: Any) -> Intent:
        intent_id = payment.provider_payment_id or BOOKS.by_payment.get(payment.id)
        if intent_id is None:
            raise ProviderError("no such intent")
        return BOOKS.intents[intent_id]

    def prepare(self, payment: Any, request: Any) -> dict[str, Any]:
        intent_id = BOOKS.by_payment.get(payment.id)
        if intent_id is None:
            intent_id = f"mi_{len(BOOKS.intents) + 1}"
            BOOKS.intents[intent_id] = Intent(intent_id, payment.id, payment.amount,
                                              payment.currency)  # fmt: skip
            BOOKS.by_payment[payment.id] = intent_id
        return {"provider_payment_id": intent_id}

    def retrieve(self, payment: Any) -> ProviderPayment:
        return BOOKS.state(self._intent(payment))

    def confirm(self, payment: Any, card: str) -> ProviderPayment:
        return BOOKS.confirm(self._intent(payment), card)

    def authenticate(self, payment: Any, approved: bool) -> ProviderPayment:
        return BOOKS.authenticate(self._intent(payment), approved)

    def cancel(self, payment: Any) -> ProviderPayment:
        intent = self._intent(payment)
        if intent.crossing:  # the customer's confirmation arrived first
            card, intent.crossing = intent.crossing, None
            BOOKS.confirm(intent, card)
        if intent.status in ("requires_payment_method", "requires_action"):
            intent.status = "canceled"
            return BOOKS.emit(intent, BOOKS.state(intent))
        return BOOKS.state(intent)

    def refund(self, payment: Any, amount: int, idempotency_key: str) -> str:
        if idempotency_key in BOOKS.refund_keys:
            return BOOKS.refund_keys[idempotency_key]
        intent = self._intent(payment)
        if amount > intent.taken - intent.refunded:
            raise ProviderError("the refund exceeds what is left of the charge")
        intent.refunded += amount
        refund_id = f"mre_{len(BOOKS.refund_keys) + 1}"
        BOOKS.refund_keys[idempotency_key] = refund_id
        return refund_id

    def minimum_charge(self, currency: str) -> int:
        return MINIMUM


register_provider("model", ModelProvider)
