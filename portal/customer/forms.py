"""Parsing the customer's forms (CSRF is checked for every POST by Flask-WTF)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from werkzeug.datastructures import MultiDict

from portal.errors import Invalid
from portal.money import MoneyError, to_minor
from portal.providers.sandbox import luhn_ok
from portal.validation import as_email

EXPIRY = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$")


@dataclass
class PayForm:
    amount: int | None = None
    email: str | None = None
    full_order: bool = False
    error: str | None = None


def parse_amount(text: str, currency: str) -> int | None:
    """``"25,50"`` or ``"25.50"`` or ``"1 234,5"`` → minor units; None when unreadable."""
    # Keep digits and separators: "€ 25,50", "25,50 €" and "25.50" all read as 25.50.
    cleaned = re.sub(r"[^0-9,.]", "", text)
    if "," in cleaned and "." in cleaned:
        cleaned = (
            cleaned.replace(".", "").replace(",", ".")
            if cleaned.rfind(",") > cleaned.rfind(".")
            else cleaned.replace(",", "")
        )
    else:
        cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
        if not value.is_finite() or value <= 0:
            return None
        return to_minor(value, currency)
    except (InvalidOperation, MoneyError):
        return None


def parse_pay_form(data: MultiDict, currency: str) -> PayForm:
    form = PayForm(full_order=data.get("full_order") == "1")
    raw = data.get("amount_choice") or data.get("amount") or ""
    if raw.strip():
        if data.get("amount_choice"):
            form.amount = int(raw) if raw.isdigit() else None
        else:
            form.amount = parse_amount(raw, currency)
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
    if not number.isdigit() or not 12 <= len(number) <= 19 or not luhn_ok(number):
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
