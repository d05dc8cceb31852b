"""Small, explicit checks for API input: each failure is a 422 with a code and a field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from portal.errors import Invalid

MISSING = object()
MAX_AMOUNT = 10**15  # in minor units: more than any payment, well inside a 64-bit column
MAX_QUANTITY = 1_000_000  # of one order line


def ascii_digits(text: str) -> bool:
    """Only 0-9: ``str.isdigit()`` also takes "²" and other digits ``int()`` refuses."""
    return text.isascii() and text.isdigit()


def require(data: dict[str, Any], key: str, path: str) -> Any:
    if key not in data or data[key] is None:
        raise Invalid("missing_field", f"{path} is required.", path)
    return data[key]


def no_unknown_fields(data: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    for key in data:
        if key not in allowed:
            raise Invalid("unknown_field", f"{prefix}{key} is not a known field.", f"{prefix}{key}")


def as_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid("invalid_type", f"{path} must be an object.", path)
    return value


def as_list(value: Any, path: str, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid("invalid_type", f"{path} must be an array.", path)
    if len(value) > max_items:
        raise Invalid("too_many_items", f"{path} has more than {max_items} items.", path)
    return value


def as_string(value: Any, path: str, max_length: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid("invalid_type", f"{path} must be a string.", path)
    value = value.strip()
    if not value and not allow_empty:
        raise Invalid("invalid_value", f"{path} must not be empty.", path)
    if len(value) > max_length:
        raise Invalid("too_long", f"{path} is longer than {max_length} characters.", path)
    return value


def opt_string(data: dict[str, Any], key: str, path: str, max_length: int) -> str | None:
    value = data.get(key)
    return None if value is None else as_string(value, path, max_length)


def as_int(value: Any, path: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one kind of number: 1250.0 is the integer 1250
    # bool is an int in Python; JSON true is not an amount.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("invalid_type", f"{path} must be an integer.", path)
    if abs(value) > MAX_AMOUNT:
        raise Invalid("invalid_value", f"{path} is out of range.", path)
    return value


def as_amount(value: Any, path: str) -> int:
    """A positive integer number of minor units."""
    amount = as_int(value, path)
    if amount <= 0:
        raise Invalid(
            "amount_below_minimum",
            f"{path} must be a positive integer number of minor units.",
            path,
        )
    return amount


def as_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid("invalid_type", f"{path} must be true or false.", path)
    return value


def as_date(value: Any, path: str) -> date:
    if not isinstance(value, str):
        raise Invalid("invalid_type", f"{path} must be a date (YYYY-MM-DD).", path)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("invalid_date", f"{path} must be a date (YYYY-MM-DD).", path) from None


def as_datetime(value: Any, path: str) -> datetime:
    """An ISO 8601 time with a zone (``2026-12-01T10:00:00Z``), returned in UTC."""
    if not isinstance(value, str):
        raise Invalid("invalid_type", f"{path} must be an ISO 8601 time.", path)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("invalid_datetime", f"{path} must be an ISO 8601 time.", path) from None
    if parsed.tzinfo is None:
        raise Invalid("invalid_datetime", f"{path} must include a time zone (e.g. Z).", path)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        raise Invalid("invalid_datetime", f"{path} is out of range.", path) from None


def as_email(value: Any, path: str) -> str:
    text = as_string(value, path, 254)
    try:
        # Lower-cased so that support finds it by an indexed equality, whatever was typed.
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise Invalid("invalid_email", f"{path} is not a valid email address.", path) from None


def as_phone(value: Any, path: str, region: str | None = None) -> str:
    """A phone number normalised to E.164 (``+32470123456``)."""
    text = as_string(value, path, 32)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise Invalid("invalid_phone", f"{path} is not a valid phone number.", path) from None
    if not phonenumbers.is_valid_number(number):
        raise Invalid("invalid_phone", f"{path} is not a valid phone number.", path)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def as_metadata(value: Any, path: str) -> dict[str, str]:
    data = as_object(value, path)
    if len(data) > 50:
        raise Invalid("too_many_items", f"{path} has more than 50 keys.", path)
    out: dict[str, str] = {}
    for key, item in data.items():
        if len(key) > 40 or not key:
            raise Invalid("invalid_value", f"{path} keys are 1 to 40 characters.", f"{path}.{key}")
        out[key] = as_string(item, f"{path}.{key}", 500, allow_empty=True)
    return out
