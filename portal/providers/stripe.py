"""The Stripe provider: PaymentIntents with the Payment Element. The only module that
imports ``stripe``.

Settings: ``STRIPE_SECRET_KEY``, ``STRIPE_PUBLISHABLE_KEY``, ``STRIPE_WEBHOOK_SECRET``,
``STRIPE_PAYMENT_METHOD_TYPES`` (explicit types; otherwise automatic payment
methods, as the account enables them) and, for tests, ``STRIPE_API_BASE`` and
``STRIPE_JS_URL``. A merchant with ``stripe_account`` is charged on that
connected account (``Stripe-Account``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, cast
from urllib.parse import urlsplit

import stripe
from flask import current_app
from flask_babel import get_locale
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from sqlalchemy import or_, select

from portal.extensions import db
from portal.links import account_url, link_url
from portal.merchants.models import Merchant
from portal.payments.booking import note_provider_refunds
from portal.payments.groups import apply_group_state, lock_group
from portal.payments.models import Payment, PaymentGroup
from portal.payments.refunds import record_provider_refunds, serialize_refunds
from portal.payments.services import apply_provider_payment, flag, lock_payment_and_request
from portal.providers.base import (
    AccountStatus,
    CheckoutPage,
    ProviderError,
    ProviderPayment,
    Submission,
    WebhookRefused,
    register_provider,
)
from portal.providers.minimums import stripe_minimum_charge

if TYPE_CHECKING:
    from portal.payment_requests.models import PaymentRequest

log = logging.getLogger(__name__)
SignatureError = stripe.SignatureVerificationError


# A call that failed on the network (or a 409/5xx Stripe marks retryable) is tried once
# more, with the SDK's back-off and the same idempotency key; then ProviderError.
STRIPE_RETRIES = 1
_clients: dict[tuple[str, str, float], stripe.StripeClient] = {}
_clients_lock = threading.Lock()


def client() -> stripe.StripeClient:
    """The process's one configured client (one per key, API base and timeout): its
    connection pool is reused, its timeout stays below the web timeout, its retries
    are bounded."""
    config = current_app.config
    secret = config["PORTAL_STRIPE_SECRET_KEY"] or "sk_test_unset"
    base, timeout = config["PORTAL_STRIPE_API_BASE"], float(config["PORTAL_STRIPE_TIMEOUT"])
    with _clients_lock:
        found = _clients.get((secret, base, timeout))
        if found is None:
            found = _clients[(secret, base, timeout)] = stripe.StripeClient(
                secret,
                base_addresses={"api": base} if base else {},
                max_network_retries=STRIPE_RETRIES,
                http_client=stripe.new_default_http_client(timeout=(min(3.0, timeout), timeout)),
            )
    return found


# A signature's timestamp may be this far from now, either way (Standard Webhooks: 5 min).
TOLERANCE = 300


def construct_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """The verified event as a plain dict; :class:`WebhookRefused` when forged, stale,
    dated in the future or not an event of the shape the handlers read."""
    _check_signature(payload, signature)
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        raise WebhookRefused("invalid_event", "Not an event.") from None
    return checked_event(event)


def _check_signature(payload: bytes, signature: str | None) -> None:
    refused = WebhookRefused("invalid_signature", "Signature check failed.")
    if not signature or not signature.isascii() or len(signature) > 4096:
        raise refused
    stamps = [part[2:] for part in signature.split(",") if part.startswith("t=")]
    if len(stamps) != 1 or not stamps[0].isdigit() or len(stamps[0]) > 12:
        raise refused
    if int(stamps[0]) > time.time() + TOLERANCE:  # the SDK refuses only the past
        raise refused
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, current_app.config["PORTAL_STRIPE_WEBHOOK_SECRET"], TOLERANCE
        )
    except (SignatureError, ValueError, TypeError):
        raise refused from None


Count = Annotated[int, Field(strict=True, ge=0)]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Error(_Loose):
    code: StrictStr | None = None
    decline_code: StrictStr | None = None
    message: StrictStr | None = None


class _Card(_Loose):
    brand: StrictStr | None = None
    last4: StrictStr | None = None


class _MethodDetails(_Loose):
    type: StrictStr | None = None
    card: _Card | None = None


class _Charge(_Loose):
    id: StrictStr | None = None
    payment_method_details: _MethodDetails | None = None


class _Intent(_Loose):
    id: StrictStr
    amount: Count | None = None
    currency: StrictStr | None = None
    status: StrictStr | None = None
    client_secret: StrictStr | None = None
    metadata: dict[str, StrictStr] | None = None
    last_payment_error: _Error | None = None
    latest_charge: StrictStr | _Charge | None = None


class _ChargeEvent(_Loose):
    id: StrictStr | None = None
    charge: StrictStr | None = None
    payment_intent: StrictStr | None = None
    amount_refunded: Count | None = None
    reason: StrictStr | None = None


class _Data(_Loose):
    object: dict[str, Any]


class _Event(_Loose):
    id: StrictStr
    type: StrictStr
    account: StrictStr | None = None
    data: _Data


def checked_event(event: Any) -> dict[str, Any]:
    """``event`` when it is an object with an id, a type and an object, and the fields the
    handlers read have their types; otherwise :class:`WebhookRefused` (a 400)."""
    try:
        parsed = _Event.model_validate(event)
        if not (0 < len(parsed.id) <= 100 and len(parsed.type) <= 100):
            raise WebhookRefused("invalid_event", "Not an event.")
        if len(parsed.account or "") > 64:
            raise WebhookRefused("invalid_event", "Not an event.")
        if parsed.type in INTENT_EVENTS:
            _Intent.model_validate(parsed.data.object)
        elif parsed.type.startswith("charge."):
            _ChargeEvent.model_validate(parsed.data.object)
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise WebhookRefused("invalid_event", f"Not an event ({where or 'body'}).") from None
    return dict(event)


def _options(payment: Payment, idempotency_key: str | None = None) -> stripe.RequestOptions:
    """The merchant's connected account (a payment's, or an account-page group's: both
    name their merchant) and the idempotency key."""
    options: stripe.RequestOptions = {}
    account = db.session.get_one(Merchant, payment.merchant_id).stripe_account
    if account:
        options["stripe_account"] = account
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def _intent_id(payment: Payment) -> str:
    """The attempt's PaymentIntent; a member of an account-page group has none of its
    own: its group's intent charged it (its refunds are partial refunds of that one)."""
    if isinstance(payment, Payment) and payment.group_id:
        group = db.session.get_one(PaymentGroup, payment.group_id)
        if group.provider_payment_id:
            return group.provider_payment_id
    if not payment.provider_payment_id:
        raise ProviderError("this attempt has no PaymentIntent yet")
    return payment.provider_payment_id


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
    }.get(str(status), "pending")
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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _metadata(payment: Payment, request: PaymentRequest) -> dict[str, str]:
    """What the PaymentIntent names: the attempt and its request, or (an account-page
    group, which has no one request) the group; and the merchant."""
    if isinstance(payment, PaymentGroup):
        return {"payment_group_id": payment.id, "merchant_id": payment.merchant_id}
    return {
        "payment_id": payment.id,
        "payment_request_id": request.id,
        "merchant_id": request.merchant_id,
    }


def _page_url(payment: Payment, request: PaymentRequest) -> str:
    """The page the browser comes back to: the payment link's, or the account page's."""
    if isinstance(payment, PaymentGroup):
        return account_url(payment.merchant_id, payment.customer_reference)
    return link_url(request.id)


# Stripe.js, its frames, its API, and the page 3-D Secure and redirect methods return through.
STRIPE_ORIGINS = "https://js.stripe.com https://*.js.stripe.com"


class StripeProvider:
    name = "stripe"
    test_cards: tuple[tuple[str, str], ...] = ()

    def checkout_page(
        self, payment: Payment, request: PaymentRequest, step: str | None, prepared: dict[str, Any]
    ) -> CheckoutPage:
        """Stripe's Payment Element on the portal's page; Stripe.js from its own origin,
        never bundled. The browser confirms with Stripe and comes back to the result page."""

        js_url = prepared["js_url"]
        api_base = current_app.config["PORTAL_STRIPE_API_BASE"]
        config = {
            "publishableKey": prepared["publishable_key"],
            "clientSecret": prepared["client_secret"],
            "stripeAccount": prepared["stripe_account"],
            "locale": str(get_locale() or "en"),
            "returnUrl": f"{_page_url(payment, request)}/return/{payment.id}",
        }
        csp = {
            "script": f"{_origin(js_url)} {STRIPE_ORIGINS}",
            "frame": f"{_origin(js_url)} {STRIPE_ORIGINS} https://hooks.stripe.com",
            "connect": "https://api.stripe.com" + (f" {_origin(api_base)}" if api_base else ""),
            "form_action": "https://hooks.stripe.com",
        }
        return CheckoutPage(
            "providers/stripe/checkout.html", {"js_url": js_url, "stripe_config": config}, csp
        )

    def submit(self, payment: Payment, step: str | None, form: Mapping[str, str]) -> Submission:
        return Submission()  # the browser confirms with Stripe itself

    webhooks = True

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        return construct_event(payload, headers.get("Stripe-Signature"))

    def handle_webhook(self, event: dict[str, Any]) -> str:
        return handle_event(event)

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
                    "metadata": _metadata(payment, request),
                }
                types = config["PORTAL_STRIPE_PAYMENT_METHOD_TYPES"]
                if types:
                    params["payment_method_types"] = list(types)
                else:
                    params["automatic_payment_methods"] = {"enabled": True}
                intent = client().v1.payment_intents.create(
                    params=cast("stripe.params.PaymentIntentCreateParams", params),
                    options=_options(payment, idempotency_key=f"portal-pi-{payment.id}"),
                )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return {
            "provider_payment_id": intent.id,
            "client_secret": intent.client_secret,
            "publishable_key": config["PORTAL_STRIPE_PUBLISHABLE_KEY"],
            "js_url": config["PORTAL_STRIPE_JS_URL"],
            "stripe_account": db.session.get_one(Merchant, payment.merchant_id).stripe_account,
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
                _intent_id(payment),
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
            intent = intents.cancel(_intent_id(payment), options=_options(payment))
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

    def register_domain(self, domain: str, account: str | None) -> str | None:
        """A payment method domain (Apple Pay, Google Pay, Link in the Payment Element),
        on the platform or on a connected account (each needs its own)."""
        key = f"portal-pmd-{account or 'platform'}-{domain}"
        options = stripe.RequestOptions(idempotency_key=key)
        if account:
            options["stripe_account"] = account
        try:
            created = client().v1.payment_method_domains.create(
                params={"domain_name": domain, "enabled": True}, options=options
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return created.id

    def onboarding_link(self, merchant: Merchant, return_url: str, refresh_url: str) -> str:
        """Stripe Connect: an Express account for the shop on its first visit (its id kept
        as the merchant's pending account, flushed), then an Account Link for its
        onboarding. Payments are not sent to it before charges are enabled."""
        try:
            if not (merchant.stripe_account or merchant.stripe_account_pending):
                params: dict[str, Any] = {
                    "type": "express",
                    "country": merchant.country,
                    "business_profile": {"name": merchant.display_name},
                    "metadata": {"merchant_id": merchant.id},
                }
                if merchant.support_email:
                    params["email"] = merchant.support_email
                account = client().v1.accounts.create(
                    params=cast("stripe.params.AccountCreateParams", params),
                    options={"idempotency_key": f"portal-acct-{merchant.id}"},
                )
                merchant.stripe_account_pending = account.id
                db.session.flush()
            account_id = merchant.stripe_account or merchant.stripe_account_pending or ""
            link = client().v1.account_links.create(
                params={
                    "account": account_id,
                    "type": "account_onboarding",
                    "return_url": return_url,
                    "refresh_url": refresh_url,
                }
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return link.url

    def account_status(self, merchant: Merchant) -> AccountStatus:
        account_id = merchant.stripe_account or merchant.stripe_account_pending
        if not account_id:
            return AccountStatus(connected=False)
        try:
            account = client().v1.accounts.retrieve(account_id).to_dict()
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        requirements = account.get("requirements") or {}
        due = set(requirements.get("currently_due") or []) | set(requirements.get("past_due") or [])
        return AccountStatus(
            connected=True,
            account=account_id,
            charges_enabled=bool(account.get("charges_enabled")),
            payouts_enabled=bool(account.get("payouts_enabled")),
            details_submitted=bool(account.get("details_submitted")),
            requirements_due=sorted(due),
        )

    def minimum_charge(self, currency: str) -> int:
        return stripe_minimum_charge(currency)

    def refund(self, payment: Payment, amount: int, idempotency_key: str) -> str:
        try:
            refund = client().v1.refunds.create(
                params={"payment_intent": _intent_id(payment), "amount": amount},
                options=_options(payment, idempotency_key=idempotency_key),
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc)) from exc
        return refund.id


# --- what each Stripe event means for the portal: a plain function per type ------------
# Each adds and flushes; the webhook's request commits the event id and its effects once.

INTENT_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.processing",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
}


class _Target(NamedTuple):
    """What an event names, read in one statement (payment, its request and its merchant's
    connected account): enough to check the event before any lock is taken."""

    id: str
    request_id: str
    stripe_account: str | None


def _payment_for(intent_id: str | None, charge_id: str | None = None) -> _Target | None:
    conditions = []
    if intent_id:
        conditions.append(Payment.provider_payment_id == intent_id)
    if charge_id:
        conditions.append(Payment.provider_charge_id == charge_id)
    if not conditions:
        return None
    row = db.session.execute(
        select(Payment.id, Payment.request_id, Merchant.stripe_account)
        .join(Merchant, Merchant.id == Payment.merchant_id)
        .where(or_(*conditions))
        .limit(1)
    ).first()
    return _Target(*row) if row is not None else None


def _account_matches(target: _Target, account: str | None) -> bool:
    """A Connect event must come from the merchant's own connected account."""
    return (target.stripe_account or None) == (account or None)


def _flag(target: _Target, reason: str) -> None:
    _, payment = lock_payment_and_request(target.id, target.request_id)
    flag(payment, reason)
    db.session.flush()


def _intent_state(
    kind: str, obj: dict[str, Any], subject_id: str, load: Callable[[], Payment]
) -> ProviderPayment:
    """What an intent event says; ``load`` gives what was charged (a payment, or a group
    read as one), asked for only when the event lacks the card's details."""
    state = state_from_intent(obj)
    if kind == "payment_intent.payment_failed":
        state.status = "failed"
    elif kind == "payment_intent.succeeded" and not state.card_last4 and state.method_type is None:
        # Stripe's events name the charge by id only: ask for it, so the receipt can say
        # which card or method paid. Without an answer the payment still settles.
        try:
            fetched = StripeProvider().retrieve(load())
        except ProviderError as exc:
            log.warning("payment %s: charge details unavailable: %s", subject_id, exc)
        else:
            for attr in ("charge_id", "method_type", "card_brand", "card_last4"):
                setattr(state, attr, getattr(state, attr) or getattr(fetched, attr))
    return state


def handle_event(event: dict[str, Any]) -> str:
    """Apply one verified event; returns a short outcome for the log."""
    kind = event["type"]
    obj = event["data"]["object"]
    account = event.get("account")
    if kind in INTENT_EVENTS:
        target = _payment_for(obj.get("id"))
        if target is None:
            return _group_event(event)
        if not _account_matches(target, account):
            _flag(target, f"{kind} from account {account!r}, not the merchant's")
            return "account mismatch"
        link = (obj.get("metadata") or {}).get("payment_request_id")
        if link != target.request_id:
            _flag(target, f"{kind} names request {link!r}, expected {target.request_id}")
            return "request mismatch"
        payment_id = target.id
        state = _intent_state(
            kind, obj, payment_id, lambda: db.session.get_one(Payment, payment_id)
        )
        outcome = apply_provider_payment(
            target.id, state, source=f"webhook:{event['id']}", request_id=target.request_id
        )
        return f"{state.status}: {outcome}"
    if kind == "charge.refunded":
        target = _payment_for(obj.get("payment_intent"), obj.get("id"))
        if target is None:
            return _group_refunds(obj)
        record_provider_refunds(target.id, int(obj.get("amount_refunded") or 0))
        return "refunds recorded"
    if kind == "charge.dispute.created":
        target = _payment_for(obj.get("payment_intent"), obj.get("charge"))
        if target is None:
            group = _group_for(obj.get("payment_intent"))
            if group is None:
                return "unknown charge"
            _flag_group(group.id, f"dispute opened ({obj.get('reason') or 'no reason given'})")
            return "dispute flagged"
        _flag(target, f"dispute opened ({obj.get('reason') or 'no reason given'})")
        return "dispute flagged"
    return "ignored"


# --- an account-page group's PaymentIntent (portal/payments/groups.py) -----------------


def _group_for(intent_id: str | None) -> PaymentGroup | None:
    if not intent_id:
        return None
    return db.session.scalars(
        select(PaymentGroup).where(PaymentGroup.provider_payment_id == intent_id)
    ).first()


def _group_event(event: dict[str, Any]) -> str:
    """A PaymentIntent event of a group: applied to the group and every member at once,
    under the group's locks (apply_group_state); a duplicate changes nothing."""
    kind, obj, account = event["type"], event["data"]["object"], event.get("account")
    group = _group_for(obj.get("id"))
    if group is None:
        return "unknown payment intent"
    merchant = db.session.get_one(Merchant, group.merchant_id)
    named = (obj.get("metadata") or {}).get("payment_group_id")
    if (merchant.stripe_account or None) != (account or None):
        return _flag_group(group.id, f"{kind} from account {account!r}, not the merchant's")
    if named != group.id:
        return _flag_group(group.id, f"{kind} names group {named!r}, expected {group.id}")
    state = _intent_state(kind, obj, group.id, lambda: cast(Payment, group))
    prs, group, members = lock_group(group.id)
    outcome = apply_group_state(prs, group, members, state, source=f"webhook:{event['id']}")
    return f"{state.status}: {outcome}"


def _flag_group(group_id: str, reason: str) -> str:
    _prs, group, members = lock_group(group_id)
    group.flagged_reason = reason[:300]
    for member in members:
        flag(member, f"group {group.id}: {reason}")
    db.session.flush()
    return "group flagged"


def _group_refunds(charge: dict[str, Any]) -> str:
    """``charge.refunded`` of a group's intent. The portal's own refunds are booked on
    their member already; a refund made in Stripe's dashboard names no member: all of
    what remains is booked on every member, anything less is flagged for support."""
    group = _group_for(charge.get("payment_intent"))
    if group is None:
        return "unknown charge"
    member_ids = sorted(db.session.scalars(select(Payment.id).where(Payment.group_id == group.id)))
    for member_id in member_ids:  # a refund of ours still waiting for Stripe ends first
        serialize_refunds(member_id)
    _prs, group, members = lock_group(group.id)
    booked = sum(m.amount_refunded for m in members)
    total = int(charge.get("amount_refunded") or 0)
    if total <= booked:
        return "refunds recorded"
    if total >= group.amount:
        for member in members:
            note_provider_refunds(member, member.amount)
        return "refunds recorded"
    return _flag_group(group.id, f"{total - booked} refunded outside the portal: whose share?")


register_provider("stripe", StripeProvider)
