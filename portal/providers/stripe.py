"""The Stripe provider: PaymentIntents with the Payment Element. The only module that
imports ``stripe``.

Settings: ``STRIPE_SECRET_KEY``, ``STRIPE_PUBLISHABLE_KEY``, ``STRIPE_WEBHOOK_SECRET``,
``STRIPE_PAYMENT_METHOD_TYPES`` (explicit types; otherwise automatic payment
methods, as the account enables them) and, for tests, ``STRIPE_API_BASE`` and
``STRIPE_JS_URL``. A merchant with ``stripe_account`` is charged on that
connected account (``Stripe-Account``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import stripe
from flask import current_app

from portal.providers.base import ProviderError, ProviderPayment, register_provider
from portal.providers.minimums import stripe_minimum_charge

if TYPE_CHECKING:
    from portal.payment_requests.models import PaymentRequest
    from portal.payments.models import Payment

SignatureError = stripe.SignatureVerificationError


def client() -> stripe.StripeClient:
    base = current_app.config["PORTAL_STRIPE_API_BASE"]
    return stripe.StripeClient(
        current_app.config["PORTAL_STRIPE_SECRET_KEY"] or "sk_test_unset",
        base_addresses={"api": base} if base else {},
        max_network_retries=2,
    )


def construct_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """The verified event (raises ``SignatureError``/``ValueError`` when forged or stale)."""
    event = stripe.Webhook.construct_event(
        payload, signature, current_app.config["PORTAL_STRIPE_WEBHOOK_SECRET"]
    )
    return event.to_dict()


def _options(payment: Payment, **extra: Any) -> dict[str, Any]:
    account = payment.request.merchant.stripe_account
    return {**({"stripe_account": account} if account else {}), **extra}


def _card(charge: Any) -> dict[str, str | None]:
    if not isinstance(charge, dict):
        return {}
    details = (charge.get("payment_method_details") or {}).get("card") or {}
    return {
        "charge_id": charge.get("id"),
        "card_brand": details.get("brand"),
        "card_last4": details.get("last4"),
        "method_type": (charge.get("payment_method_details") or {}).get("type"),
    }


def state_from_intent(intent: dict[str, Any]) -> ProviderPayment:
    """A PaymentIntent (API object or webhook payload) as the portal's ProviderPayment."""
    status = intent.get("status")
    error = intent.get("last_payment_error") or {}
    mapped = {
        "succeeded": "succeeded",
        "processing": "processing",
        "canceled": "canceled",
        "requires_action": "requires_action",
    }.get(status, "pending")
    if status == "requires_payment_method" and error:
        mapped = "failed"
    charge = intent.get("latest_charge")
    extra = _card(charge) if isinstance(charge, dict) else {"charge_id": charge}
    return ProviderPayment(
        status=mapped,
        amount=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or "").upper(),
        provider_payment_id=intent.get("id"),
        failure_code=error.get("decline_code") or error.get("code"),
        failure_message=error.get("message"),
        client_secret=intent.get("client_secret"),
        raw={"status": status},
        **{k: v for k, v in extra.items() if v},
    )


class StripeProvider:
    name = "stripe"

    def prepare(self, payment: Payment, request: PaymentRequest) -> dict[str, Any]:
        """Create the PaymentIntent once per attempt (reused on a second tab)."""
        config = current_app.config
        try:
            if payment.provider_payment_id:
                intent = client().v1.payment_intents.retrieve(
                    payment.provider_payment_id, options=_options(payment)
                )
            else:
                params: dict[str, Any] = {
                    "amount": payment.amount,
                    "currency": payment.currency.lower(),
                    "metadata": {
                        "payment_id": payment.id,
                        "payment_request_id": request.id,
                        "merchant_id": request.merchant_id,
                    },
                }
                types = config["PORTAL_STRIPE_PAYMENT_METHOD_TYPES"]
                if types:
                    params["payment_method_types"] = list(types)
                else:
                    params["automatic_payment_methods"] = {"enabled": True}
                intent = client().v1.payment_intents.create(
                    params=params,
                    options=_options(payment, idempotency_key=f"portal-pi-{payment.id}"),
                )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return {
            "provider_payment_id": intent.id,
            "client_secret": intent.client_secret,
            "publishable_key": config["PORTAL_STRIPE_PUBLISHABLE_KEY"],
            "js_url": config["PORTAL_STRIPE_JS_URL"],
            "stripe_account": request.merchant.stripe_account,
        }

    def confirm(self, payment: Payment, payment_method: str) -> ProviderPayment:
        """Attach a payment method collected by the browser and confirm (the card flow)."""
        intents = client().v1.payment_intents
        try:
            return self._confirm(intents, payment, payment_method)
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc

    def _confirm(self, intents: Any, payment: Payment, payment_method: str) -> ProviderPayment:
        try:
            intents.update(
                payment.provider_payment_id,
                params={"payment_method": payment_method},
                options=_options(payment),
            )
            intent = intents.confirm(payment.provider_payment_id, options=_options(payment))
        except stripe.CardError as exc:
            intent = intents.retrieve(payment.provider_payment_id, options=_options(payment))
            state = state_from_intent(intent.to_dict())
            state.status = "failed"
            state.failure_code = exc.code
            state.failure_message = exc.user_message
            return state
        return state_from_intent(intent.to_dict())

    def retrieve(self, payment: Payment) -> ProviderPayment:
        try:
            intent = client().v1.payment_intents.retrieve(
                payment.provider_payment_id,
                params={"expand": ["latest_charge"]},
                options=_options(payment),
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return state_from_intent(intent.to_dict())

    def authenticate(self, payment: Payment, approved: bool) -> ProviderPayment:
        raise ProviderError("Stripe runs 3-D Secure in the browser (Stripe.js)")

    def cancel(self, payment: Payment) -> ProviderPayment:
        """Cancel the PaymentIntent; one Stripe will not cancel any more (it succeeded or is
        processing) is answered with its state, for the caller to apply."""
        intents = client().v1.payment_intents
        try:
            intent = intents.cancel(payment.provider_payment_id, options=_options(payment))
        except stripe.InvalidRequestError as exc:
            # Stripe says payment_intent_unexpected_state: already canceled, succeeded or
            # processing. Its state is the answer; anything else is an error.
            state = self.retrieve(payment)
            if state.status not in ("canceled", "succeeded", "processing"):
                raise ProviderError(str(exc)) from exc
            return state
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return state_from_intent(intent.to_dict())

    def minimum_charge(self, currency: str) -> int:
        return stripe_minimum_charge(currency)

    def refund(self, payment: Payment, amount: int, idempotency_key: str) -> str:
        try:
            refund = client().v1.refunds.create(
                params={"payment_intent": payment.provider_payment_id, "amount": amount},
                options=_options(payment, idempotency_key=idempotency_key),
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return refund.id


register_provider("stripe", StripeProvider)
