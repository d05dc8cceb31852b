"""Parsing the customer's forms (CSRF is checked for every POST by Flask-WTF)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from werkzeug.datastructures import MultiDict

from portal.errors import Invalid
from portal.money import MoneyError, precision, to_minor
from portal.providers.sandbox import luhn_ok
from portal.validation import as_email, ascii_digits

EXPIRY = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$")


@dataclass
class PayForm:
    amount: int | None = None
    email: str | None = None
    full_order: bool = False
    error: str | None = None


def parse_amount(text: str, currency: str, locale: str | None = None) -> int | None:
    """What a customer typed (or copied from the page) → minor units; None when unreadable.

    ``"25,50"``, ``"25.50"``, ``"€ 1.234,50"``, ``"1 234,50 €"``, ``"¥1,234"`` all read as
    meant. With one kind of separator, it is the decimal mark only if the digits after it
    fit the currency (``"1,234"`` is a thousand-and-more in EUR and JPY); when both readings
    fit (KWD has three decimals), the locale's own decimal mark decides.
    """
    cleaned = re.sub(r"[^0-9,.]", "", text)
    if not cleaned or not any(c.isdigit() for c in cleaned):
        return None
    separators = {c for c in cleaned if c in ",."}
    if len(separators) == 2:
        # Both: the rightmost one is the decimal mark.
        decimal_mark = "," if cleaned.rfind(",") > cleaned.rfind(".") else "."
    elif separators:
        (mark,) = separators
        after = len(cleaned) - cleaned.rfind(mark) - 1
        digits = precision(currency)
        if cleaned.count(mark) > 1 or after > digits:
            # Only grouping ("1.234.567", "1,234" in EUR), if it is written like grouping
            # and is not the customer's decimal mark ("12.345" in English is an error).
            grouped = re.fullmatch(rf"[1-9]\d{{0,2}}(\{mark}\d{{3}})+", cleaned)
            if not grouped or (locale and mark == _decimal_symbol(locale)):
                return None
            if not locale and cleaned.count(mark) == 1:
                return None  # "1.005": grouping or a typo? Without a locale, ask again.
            decimal_mark = None
        elif after == 3 and digits == 3 and locale:
            decimal_mark = mark if mark == _decimal_symbol(locale) else None
        else:
            decimal_mark = mark
    else:
        decimal_mark = None
    if decimal_mark:
        head, _, fraction = cleaned.rpartition(decimal_mark)
        number = re.sub(r"[,.]", "", head) + "." + fraction
    else:
        number = re.sub(r"[,.]", "", cleaned)
    try:
        value = Decimal(number)
        if not value.is_finite() or value <= 0:
            return None
        return to_minor(value, currency)
    except (InvalidOperation, MoneyError):
        return None


def _decimal_symbol(locale: str) -> str:
    from babel.numbers import get_decimal_symbol

    return get_decimal_symbol(locale)


def parse_pay_form(data: MultiDict, currency: str, locale: str | None = None) -> PayForm:
    form = PayForm(full_order=data.get("full_order") == "1")
    raw = data.get("amount_choice") or data.get("amount") or ""
    if raw.strip():
        if data.get("amount_choice"):
            form.amount = int(raw) if ascii_digits(raw) and len(raw) < 19 else None
        else:
            form.amount = parse_amount(raw, currency, locale)
        if form.amount is None:
            form.error = "amount_invalid"
            return form
    email = (data.get("email") or "").strip()
    if email:
        try:
            form.email = as_email(email, "email")
        except Invalid:
            form.error = "email_invalid"
    return form


def parse_card_form(data: MultiDict) -> tuple[str, dict[str, str]]:
    """The card number, and errors by field (codes the template translates)."""
    errors: dict[str, str] = {}
    number = re.sub(r"[\s-]", "", data.get("card_number", ""))
    if not ascii_digits(number) or not 12 <= len(number) <= 19 or not luhn_ok(number):
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
