from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from portal.ids import new_id
from portal.money import (
    MoneyError,
    format_money,
    is_supported_currency,
    precision,
    supported_currencies,
    to_major,
    to_minor,
)


def test_precision_from_babel():
    assert precision("EUR") == 2
    assert precision("JPY") == 0
    assert precision("KWD") == 3


def test_to_minor_and_back():
    assert to_minor("10000.00", "EUR") == 1_000_000
    assert to_minor("10000", "JPY") == 10_000
    assert to_minor("1.234", "KWD") == 1234
    assert to_major(1250, "EUR") == Decimal("12.50")
    with pytest.raises(MoneyError):
        to_minor("1.5", "JPY")
    with pytest.raises(MoneyError):
        to_minor("abc", "EUR")


def _spaces(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


def test_locale_formatting():
    assert _spaces(format_money(123456, "EUR", "nl")) == "€ 1.234,56"
    assert _spaces(format_money(123456, "EUR", "fr")) == "1 234,56 €"
    assert format_money(123456, "EUR", "en") == "€1,234.56"
    assert format_money(1500, "JPY", "en") == "¥1,500"


def test_currencies():
    assert is_supported_currency("EUR")
    assert not is_supported_currency("XYZ")
    assert not is_supported_currency("FRF")  # historical
    assert not is_supported_currency(978)


def test_tender_currencies_come_from_babel_by_date():
    # Bulgaria adopted the euro on 2026-01-01: the lev is no longer tender anywhere.
    assert "BGN" in supported_currencies(date(2025, 6, 1))
    assert "BGN" not in supported_currencies(date(2026, 6, 1))
    assert not is_supported_currency("BGN")
    for code in ("EUR", "USD", "JPY", "KWD", "CHF", "GBP"):
        assert is_supported_currency(code), code
    for code in ("XAU", "XTS", "HRK", "CHE", "USN"):  # a metal, a test code, gone, funds
        assert not is_supported_currency(code), code


def test_ids_are_prefixed_and_random():
    ids = {new_id("pr") for _ in range(1000)}
    assert len(ids) == 1000
    sample = next(iter(ids))
    assert sample.startswith("pr_")
    assert len(sample) == 3 + 22  # 128 bits in base62
