"""Parsing the customer's forms (CSRF is checked for every POST by Flask-WTF)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_symbol, get_decimal_symbol
from werkzeug.datastructures import MultiDict

from portal.api.schemas import normalise_email
from portal.money import MoneyError, precision, to_minor


def ascii_digits(text: str) -> bool:
    """Only 0-9: ``str.isdigit()`` also takes "²" and other digits ``int()`` refuses."""
    return text.isascii() and text.isdigit()


@dataclass
class PayForm:
    amount: int | None = None
    email: str | None = None
    full_order: bool = False
    error: str | None = None
    # The field the error is about, and what the customer typed (shown again as typed).
    error_field: str | None = None
    typed: dict[str, str] = field(default_factory=dict)


# Spaces a person (or a copy from a page) puts between digit groups: plain, no-break,
# narrow no-break (French), thin.
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]+")
_NUMBER = re.compile(r"\d+(?:[.,' ]\d+)*")


def _strip_currency(text: str, currency: str, locale: str | None) -> str:
    """``€ 30``, ``30 €``, ``EUR 30``, ``30,-``: the number alone, or the text unchanged."""
    marks = {currency, currency.lower(), get_currency_symbol(currency, "en")}
    if locale:
        marks.add(get_currency_symbol(currency, locale))
    for mark in sorted(marks, key=len, reverse=True):
        if text.startswith(mark):
            text = text[len(mark) :].strip()
            break
        if text.endswith(mark):
            text = text[: -len(mark)].strip()
            break
    if text.endswith((",-", ".-", ",\u2013", ".\u2013")):  # "30,-": thirty, no cents
        text = text[:-2]
    return text


def parse_amount(text: str, currency: str, locale: str | None = None) -> int | None:
    """What a customer typed (or copied from the page) → minor units; None when it is not
    plainly one amount.

    Read: ``30``, ``30,00``, ``30.00``, ``€ 30``, ``30 €``, ``EUR 30``, ``1 234,50``,
    ``1.234,50``, ``1,234.50``, ``1'234.50``, ``30,-``. Refused, never guessed: signs,
    exponents, letters, two numbers (``2 x 10``), groups that are not of three digits,
    and more decimals than the currency has. With one kind of separator, it is the
    decimal mark when the digits after it fit the currency (``"1,234"`` is a thousand
    and more in EUR); when both readings fit (KWD has three decimals), or when three
    digits follow, the locale's own decimal mark decides.
    """
    text = _SPACES.sub(" ", text).strip()
    text = _strip_currency(text, currency, locale)
    if not _NUMBER.fullmatch(text):
        return None
    digits = precision(currency)
    try:
        decimal_mark = _decimal_mark(text, digits, locale)
    except ValueError:
        return None
    whole, fraction = text, ""
    if decimal_mark:
        whole, _, fraction = text.rpartition(decimal_mark)
        if not fraction or len(fraction) > digits or not fraction.isdigit():
            return None
    integer = _ungrouped(whole, text, decimal_mark)
    if integer is None or not ascii_digits(integer):
        return None
    try:
        value = Decimal(f"{integer}.{fraction}" if fraction else integer)
        if value <= 0:
            return None
        return to_minor(value, currency)
    except (InvalidOperation, MoneyError):
        return None


def _decimal_mark(text: str, digits: int, locale: str | None) -> str | None:
    """The decimal mark of ``text`` (a plain number), None when it has none; ValueError
    when it cannot be read without guessing."""
    separators = {c for c in text if c in ".,"}
    if len(separators) == 2:
        return "," if text.rfind(",") > text.rfind(".") else "."
    if not separators:
        return None
    (mark,) = separators
    after = len(text) - text.rfind(mark) - 1
    if text.count(mark) == 1 and after <= digits:
        if after == 3 and locale and mark != _decimal_symbol(locale):
            return None  # "1.234" in Dutch: grouping
        return mark
    if locale and mark == _decimal_symbol(locale):
        raise ValueError("three decimals")  # "12.345" in English, not a thousand separator
    if not locale and text.count(mark) == 1:
        raise ValueError("ambiguous")  # "1.005": grouping or a typo? Without a locale, ask.
    return None


def _ungrouped(whole: str, text: str, decimal_mark: str | None) -> str | None:
    """``whole`` without its group marks, None when they are not groups of three."""
    group_marks = {c for c in text if c in ".,' "} - {decimal_mark}
    if len(group_marks) > 1:
        return None  # "1.234 567": two ways of grouping
    if not group_marks:
        return whole
    (group,) = group_marks
    if not re.fullmatch(rf"[1-9]\d{{0,2}}(?:{re.escape(group)}\d{{3}})+", whole):
        return None
    return whole.replace(group, "")


def _decimal_symbol(locale: str) -> str:
    return get_decimal_symbol(locale)


def parse_pay_form(data: MultiDict, currency: str, locale: str | None = None) -> PayForm:
    """The pay form: a suggestion button's amount, or what was typed (which wins when the
    form was sent with Enter: the typed-amount button is the form's default)."""
    form = PayForm(full_order=data.get("full_order") == "1")
    typed = (data.get("amount") or "").strip()
    choice = "" if data.get("action") == "typed" else (data.get("amount_choice") or "").strip()
    form.typed = {"amount": typed[:40], "email": (data.get("email") or "").strip()[:254]}
    if choice:
        form.amount = int(choice) if ascii_digits(choice) and len(choice) < 19 else None
    elif typed:
        form.amount = parse_amount(typed, currency, locale)
    if (choice or typed) and form.amount is None:
        form.error, form.error_field = "amount_invalid", "amount"
        return form
    email = form.typed["email"]
    if email:
        try:
            form.email = normalise_email(email)
        except ValueError:
            form.error, form.error_field = "email_invalid", "email"
    return form
