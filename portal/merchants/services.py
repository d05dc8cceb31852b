"""Merchants and API keys: creation, authentication, revocation."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from portal.db_types import utcnow
from portal.errors import Invalid
from portal.extensions import db
from portal.ids import random_token
from portal.merchants.models import ApiKey, Merchant
from portal.money import MoneyError, format_money, is_supported_currency, to_minor
from portal.phones import is_country

KEY_PREFIX = "sk_portal_"
LOCALES = ("en", "fr", "nl", "de")
# Writing last_used_at on every call would make every API read a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class MerchantError(ValueError):
    """Invalid merchant settings (CLI input)."""


def normalise_origin(origin: str) -> str:
    """``https://shop.example.com`` (scheme and host, optional port), for ``frame-ancestors``."""

    parts = urlsplit(origin.strip())
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise MerchantError(f"{origin!r} is not an https origin such as https://shop.example.com")
    if parts.query or parts.fragment or parts.username:
        raise MerchantError(f"{origin!r} is not an https origin such as https://shop.example.com")
    port = f":{parts.port}" if parts.port else ""
    return f"https://{parts.hostname}{port}"


def check_place(country: str, time_zone: str) -> tuple[str, str]:
    """A two-letter country code (``BE``) and an IANA time zone (``Europe/Brussels``)."""
    country = country.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", country) or not is_country(country):
        raise MerchantError(f"unknown country {country!r} (ISO 3166-1 alpha-2, e.g. BE)")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise MerchantError(f"{time_zone!r} is not a time zone such as Europe/Brussels") from None
    return country, time_zone


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_merchant(
    name: str,
    currency: str,
    *,
    ceiling: str | None = None,
    default_ceiling: str = "10000.00",
    locale: str = "en",
    display_name: str | None = None,
    support_email: str | None = None,
    min_payment: str | None = None,
    country: str = "BE",
    time_zone: str = "Europe/Brussels",
    legal_details: str | None = None,
) -> Merchant:
    """Add a merchant to the session (no commit)."""
    currency = currency.upper()
    if not is_supported_currency(currency):
        raise MerchantError(f"unknown currency {currency!r}")
    if locale not in LOCALES:
        raise MerchantError(f"locale must be one of {', '.join(LOCALES)}")
    try:
        ceiling_minor = to_minor(ceiling or default_ceiling, currency)
    except MoneyError as exc:
        raise MerchantError(str(exc)) from None
    if ceiling_minor <= 0:
        raise MerchantError("the ceiling must be positive")
    try:
        minimum = to_minor(min_payment, currency) if min_payment else None
    except MoneyError as exc:
        raise MerchantError(str(exc)) from None
    if minimum is not None and not 0 < minimum <= ceiling_minor:
        raise MerchantError("the minimum payment must be positive and at most the ceiling")
    if not name.strip():
        raise MerchantError("the name must not be empty")
    country, time_zone = check_place(country, time_zone)
    merchant = Merchant(
        name=name.strip(),
        display_name=(display_name or name).strip(),
        currency=currency,
        default_locale=locale,
        locales=list(LOCALES),
        ceiling=ceiling_minor,
        min_payment=minimum,
        support_email=support_email,
        embed_origins=[],
        country=country,
        time_zone=time_zone,
        legal_details=(legal_details or "").strip() or None,
        event_seq=0,
        receipt_seq=0,
    )
    db.session.add(merchant)
    db.session.flush()
    return merchant


def create_api_key(merchant: Merchant, label: str | None = None, secret: str | None = None) -> str:
    """Add a new key and return its secret, the only time it is ever visible."""
    secret = secret or f"{KEY_PREFIX}{random_token(24)}"
    db.session.add(
        ApiKey(
            merchant_id=merchant.id,
            key_hash=hash_key(secret),
            prefix=secret[: len(KEY_PREFIX) + 4],
            label=label,
        )
    )
    db.session.flush()
    return secret


def revoke_api_key(key_id: str) -> ApiKey | None:
    key = db.session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


# Every API call looks its key up: the statement is built once, not at each call.
_KEY_BY_HASH = (
    select(ApiKey)
    .options(joinedload(ApiKey.merchant))
    .where(ApiKey.key_hash == bindparam("digest"))
)


def authenticate(secret: str) -> ApiKey | None:
    """The live key for ``secret``, or None. Updates last use at most once a minute."""
    if not secret or len(secret) > 200:
        return None
    digest = hash_key(secret)
    key = db.session.scalars(_KEY_BY_HASH, {"digest": digest}).first()
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, digest):
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    return key


def update_settings(merchant: Merchant, changes: dict[str, Any]) -> Merchant:
    """Apply the settings a merchant may change itself (the API's ``PATCH /merchant``);
    ``changes`` holds only the fields sent. Raises :class:`portal.errors.Invalid`."""
    if "embed_origins" in changes:
        origins = []
        for i, origin in enumerate(changes["embed_origins"] or []):
            try:
                origins.append(normalise_origin(origin))
            except MerchantError as exc:
                raise Invalid("invalid_origin", str(exc), f"embed_origins[{i}]") from None
        changes = {**changes, "embed_origins": sorted(set(origins))}
    if changes.get("accent_color") is not None and readable_text(changes["accent_color"]) is None:
        raise Invalid("accent_contrast", "Neither white nor black text is readable on this "
                      "colour (WCAG AA asks 4.5:1).", "accent_color")  # fmt: skip
    if changes.get("ceiling") is not None:
        _check_ceiling(merchant, changes["ceiling"])
    if "reminders" in changes:
        _set_reminders(merchant, changes["reminders"])
    for name in ("display_name", "support_email", "support_phone", "default_locale",
                 "embed_origins", "accent_color", "country", "time_zone", "ceiling",
                 "daily_digest"):  # fmt: skip
        if name in changes:
            required = ("display_name", "default_locale", "accent_color", "country", "time_zone",
                        "ceiling", "daily_digest")  # fmt: skip
            if name in required and changes[name] is None:
                raise Invalid("invalid_value", f"{name} cannot be removed.", name)
            setattr(merchant, name, changes[name])
    db.session.flush()
    return merchant


def _set_reminders(merchant: Merchant, reminders: dict[str, Any] | None) -> None:
    """The whole reminder settings at once (PATCH replaces them); they apply to the
    requests created from now on (docs/reminders.md)."""
    if reminders is None:
        raise Invalid("invalid_value", "reminders cannot be removed.", "reminders")
    merchant.reminder_schedule = list(dict.fromkeys(reminders["schedule"]))
    merchant.reminder_channels = list(dict.fromkeys(reminders["channels"]))
    merchant.quiet_start = reminders["quiet_hours"]["start"]
    merchant.quiet_end = reminders["quiet_hours"]["end"]


def _check_ceiling(merchant: Merchant, ceiling: int) -> None:
    """A merchant's own ceiling: at most the operator's maximum, not under its minimum."""
    maximum = to_minor(current_app.config["PORTAL_MAX_CEILING"], merchant.currency)
    if ceiling > maximum:
        money = format_money(maximum, merchant.currency)
        raise Invalid("ceiling_above_maximum", f"The ceiling is at most {money}.", "ceiling")
    if merchant.min_payment and ceiling < merchant.min_payment:
        raise Invalid("ceiling_below_minimum", "The ceiling is below the minimum payment.",
                      "ceiling")  # fmt: skip


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def readable_text(colour: str) -> str | None:
    """The button text the portal puts on ``colour`` (white, else #111111) when it has a
    WCAG AA contrast of 4.5:1; None when neither has (the colour is refused)."""
    lum = _luminance(colour)
    if 1.05 / (lum + 0.05) >= 4.5:
        return "#ffffff"
    if (lum + 0.05) / (_luminance("#111111") + 0.05) >= 4.5:
        return "#111111"
    return None
