"""The sandbox provider: a local stand-in for demos and development.

It "charges" on its own card page (``templates/providers/sandbox/``, with its
card form and 3-D Secure step) with the familiar test cards, and drives the same
:func:`portal.payments.services.apply_provider_payment` path as Stripe.
Nothing leaves the machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from portal.ids import random_token
from portal.providers.base import (
    AccountStatus,
    CheckoutPage,
    ProviderPayment,
    Submission,
    WebhookRefused,
    register_provider,
)
from portal.providers.minimums import stripe_minimum_charge

if TYPE_CHECKING:
    from portal.merchants.models import Merchant
    from portal.payment_requests.models import PaymentRequest
    from portal.payments.models import Payment

SUCCESS = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT = "4000000000009995"
THREE_D_SECURE = "4000002760003184"
# What each test number does (shown on the development start page); any other number
# that passes the Luhn check succeeds, with any future expiry and any CVC.
TEST_CARDS = (
    (SUCCESS, "succeeds"),
    (DECLINED, "is declined"),
    (INSUFFICIENT, "is declined for insufficient funds"),
    (THREE_D_SECURE, "asks for a 3-D Secure approval (approve or fail it on the next page)"),
)


EXPIRY = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$")


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number]
    checksum = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        checksum += d
    return checksum % 10 == 0


def brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or (
        number[:4].isdigit() and 2221 <= int(number[:4]) <= 2720
    ):
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "card"


def parse_card_form(data: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The card number, and errors by field (codes the template translates)."""
    errors: dict[str, str] = {}
    number = re.sub(r"[\s-]", "", data.get("card_number", ""))
    if (
        not (number.isascii() and number.isdigit())
        or not 12 <= len(number) <= 19
        or not luhn_ok(number)
    ):
        errors["card_number"] = "card_number_invalid"
    match = EXPIRY.match(data.get("expiry", ""))
    if not match:
        errors["expiry"] = "expiry_invalid"
    else:
        month, year = int(match.group(1)), int(match.group(2))
        year += 2000 if year < 100 else 0
        today = date.today()
        if not 1 <= month <= 12:
            errors["expiry"] = "expiry_invalid"
        elif (year, month) < (today.year, today.month):
            errors["expiry"] = "expiry_past"
    cvc = data.get("cvc", "").strip()
    if not cvc.isdigit() or len(cvc) not in (3, 4):
        errors["cvc"] = "cvc_invalid"
    return number, errors


class SandboxProvider:
    name = "sandbox"
    test_cards: tuple[tuple[str, str], ...] = TEST_CARDS
    webhooks = False  # it settles in the page's own request

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        raise WebhookRefused("not_found", "The sandbox sends no webhooks.")

    def handle_webhook(self, event: dict[str, Any]) -> str:
        return "ignored"

    def checkout_page(
        self, payment: Payment, request: PaymentRequest, step: str | None, prepared: dict[str, Any]
    ) -> CheckoutPage:
        if step == "3ds":
            return CheckoutPage("providers/sandbox/three_d_secure.html")
        return CheckoutPage("providers/sandbox/checkout.html", {"errors": {}, "form": {}})

    def submit(self, payment: Payment, step: str | None, form: Mapping[str, str]) -> Submission:
        if step == "3ds":
            return Submission(state=self.authenticate(payment, form.get("decision") == "approve"))
        card, errors = parse_card_form(form)
        if errors:
            typed = {k: form.get(k, "") for k in ("card_number", "expiry")}
            page = CheckoutPage(
                "providers/sandbox/checkout.html", {"errors": errors, "form": typed}, status=422
            )
            return Submission(page=page)
        state = self.confirm(payment, card)
        return Submission(
            state=state, next_step="3ds" if state.status == "requires_action" else None
        )

    def prepare(self, payment: Payment, request: PaymentRequest) -> dict[str, Any]:
        provider_id = payment.provider_payment_id or f"sbx_{random_token()}"
        return {"provider": self.name, "provider_payment_id": provider_id}

    def _state(self, payment: Payment, status: str, **extra: Any) -> ProviderPayment:
        return ProviderPayment(
            status=status,
            amount=payment.amount,
            currency=payment.currency,
            provider_payment_id=payment.provider_payment_id,
            **extra,
        )

    def confirm(self, payment: Payment, card_number: str) -> ProviderPayment:
        """What a card does with the test numbers; any other valid number succeeds."""
        number = "".join(c for c in card_number if c.isdigit())
        card = {"method_type": "card", "card_brand": brand(number), "card_last4": number[-4:]}
        if number == DECLINED:
            return self._state(
                payment, "failed", failure_code="card_declined",
                failure_message="Your card was declined.", **card,
            )  # fmt: skip
        if number == INSUFFICIENT:
            return self._state(
                payment, "failed", failure_code="insufficient_funds",
                failure_message="Your card has insufficient funds.", **card,
            )  # fmt: skip
        if number == THREE_D_SECURE:
            return self._state(payment, "requires_action", **card)
        return self._state(payment, "succeeded", **card)

    def authenticate(self, payment: Payment, approved: bool) -> ProviderPayment:
        """The 3-D Secure step's answer."""
        if approved:
            return self._state(payment, "succeeded")
        return self._state(
            payment, "failed", failure_code="authentication_failed",
            failure_message="The card's 3-D Secure check failed.",
        )  # fmt: skip

    def retrieve(self, payment: Payment) -> ProviderPayment:
        # The sandbox settles synchronously: the database already holds the truth.
        return self._state(payment, payment.status)

    def cancel(self, payment: Payment) -> ProviderPayment:
        # Its charges happen under the attempt's lock: an attempt being canceled is unpaid.
        return self._state(payment, "canceled")

    def refund(self, payment: Payment, amount: int, idempotency_key: str) -> str:
        return f"sbre_{random_token()}"

    def minimum_charge(self, currency: str) -> int:
        return stripe_minimum_charge(currency)  # as in production

    def register_domain(self, domain: str, account: str | None) -> str | None:
        return None  # no wallets in the sandbox

    def onboarding_link(self, merchant: Merchant, return_url: str, refresh_url: str) -> str:
        return return_url  # nothing to fill in: the sandbox's account is ready at once

    def account_status(self, merchant: Merchant) -> AccountStatus:
        return AccountStatus(
            connected=True, charges_enabled=True, payouts_enabled=True, details_submitted=True
        )


register_provider("sandbox", SandboxProvider)
