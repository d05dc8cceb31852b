"""The shop's settings and API keys, changed by its owner: the API's rules, audited.

Services add and flush; the request commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.api import schemas
from portal.api.contract import parse
from portal.customer.forms import parse_amount
from portal.errors import Invalid, NotFound
from portal.extensions import db
from portal.ledger import callbacks
from portal.ledger.endpoints import (
    check_url,
    get_endpoint,
    list_endpoints,
    queue_test_event,
    rotate,
    update_endpoint,
)
from portal.ledger.models import CallbackDelivery, CallbackEndpoint
from portal.merchant_console.accounts import audit
from portal.merchant_console.forms import national_phone
from portal.merchant_console.models import MerchantUser
from portal.merchants.models import ApiKey
from portal.merchants.services import create_api_key, revoke_api_key, update_settings

FIELDS = ("display_name", "support_email", "support_phone", "default_locale", "accent_color",
          "country", "time_zone")  # fmt: skip


def form_changes(form: Any, currency: str = "EUR", locale: str = "en") -> dict[str, Any]:
    """The form as ``PATCH /api/v1/merchant``'s body: an emptied optional field removes it."""
    body: dict[str, Any] = {name: (form.get(name) or "").strip() or None for name in FIELDS}
    body["support_phone"] = national_phone(body["support_phone"], (body["country"] or "BE").upper())
    typed = (form.get("ceiling") or "").strip()
    if typed:
        ceiling = parse_amount(typed, currency, locale)
        if ceiling is None:
            raise Invalid("invalid_amount", "Type the ceiling as an amount.", "ceiling")
        body["ceiling"] = ceiling
    origins = [line.strip() for line in (form.get("embed_origins") or "").splitlines()]
    body["embed_origins"] = [o for o in origins if o]
    if "quiet_start" in form:
        body["reminders"] = _reminder_form(form)
    body["daily_digest"] = form.get("daily_digest") == "1"  # an unticked box is not sent
    return body


def _hour(form: Any, name: str) -> int:
    typed = (form.get(name) or "").strip()
    if not typed.isdigit():
        raise Invalid("invalid_hour", "Quiet hours are whole hours from 0 to 23.",
                      f"reminders.quiet_hours.{name[6:]}")  # fmt: skip
    return int(typed)


def _reminder_form(form: Any) -> dict[str, Any]:
    """The reminder fields as the API's ``reminders`` object."""
    rules = [r.strip() for r in (form.get("reminder_schedule") or "").split(",")]
    return {
        "schedule": [r for r in rules if r],
        "channels": [c for c in form.getlist("reminder_channels") if c in ("email", "sms")],
        "quiet_hours": {"start": _hour(form, "quiet_start"), "end": _hour(form, "quiet_end")},
    }


def change_settings(user: MerchantUser, body: dict[str, Any]) -> None:
    """Raises :class:`portal.errors.Invalid` (the API's codes and fields)."""
    changes = parse(schemas.UpdateMerchant, body).model_dump(exclude_unset=True)
    merchant = user.merchant
    before = {name: getattr(merchant, name) for name in changes}
    update_settings(merchant, changes)
    after = {name: getattr(merchant, name) for name in changes}
    changed = {k: [before[k], after[k]] for k in changes if before[k] != after[k]}
    if changed:
        audit(user, "settings.changed", merchant.id, changes=changed)


def keys_of(user: MerchantUser) -> list[ApiKey]:
    return list(
        db.session.scalars(
            select(ApiKey).where(ApiKey.merchant_id == user.merchant_id).order_by(ApiKey.created_at)
        )
    )


def endpoints_of(user: MerchantUser) -> list[CallbackEndpoint]:
    return list_endpoints(user.merchant)


def new_key(user: MerchantUser, label: str) -> str:
    """The secret, shown once."""
    secret = create_api_key(user.merchant, label=label[:100] or None)
    key = db.session.scalars(
        select(ApiKey).where(ApiKey.merchant_id == user.merchant_id).order_by(
            ApiKey.created_at.desc())
    ).first()  # fmt: skip
    audit(user, "api_key.created", key.id if key else "", label=label[:100])
    return secret


def revoke_key(user: MerchantUser, key_id: str) -> None:
    key = db.session.get(ApiKey, key_id)
    if key is None or key.merchant_id != user.merchant_id:
        raise NotFound("API key")
    revoke_api_key(key.id)
    audit(user, "api_key.revoked", key.id)


def add_endpoint(user: MerchantUser, url: str) -> CallbackEndpoint:
    """Raises :class:`portal.errors.Invalid` (``unsafe_url``) as the API does."""
    body = parse(schemas.CreateWebhookEndpoint, {"url": url.strip()})
    check_url(body.url)
    endpoint = callbacks.add_endpoint(user.merchant_id, body.url)
    audit(user, "endpoint.added", endpoint.id, url=endpoint.url)
    return endpoint


def endpoint_of(user: MerchantUser, endpoint_id: str) -> CallbackEndpoint:
    return get_endpoint(user.merchant, endpoint_id)


def change_endpoint(user: MerchantUser, endpoint: CallbackEndpoint, what: str) -> str | None:
    """``enable``, ``disable``, ``rotate`` (returns the new secret) or ``test``."""
    secret = None
    if what in ("enable", "disable"):
        update_endpoint(endpoint, {"enabled": what == "enable"})
    elif what == "rotate":
        secret = rotate(endpoint, 24)
    elif what == "test":
        queue_test_event(endpoint)
    else:
        return None
    audit(user, f"endpoint.{what}", endpoint.id)
    return secret


def deliveries_of(user: MerchantUser, limit: int = 50) -> list[CallbackDelivery]:
    return list(
        db.session.scalars(
            select(CallbackDelivery)
            .where(CallbackDelivery.merchant_id == user.merchant_id)
            .order_by(CallbackDelivery.created_at.desc(), CallbackDelivery.id.desc())
            .limit(limit)
        )
    )


def replay(user: MerchantUser, event_id: str) -> None:
    """The event again to every endpoint that wants it (raises NotFound for another's)."""
    callbacks.redeliver_event(user.merchant_id, event_id)
    audit(user, "event.replayed", event_id)
