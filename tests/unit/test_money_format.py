"""``format_money`` takes Babel's currency pattern apart once per (currency, locale)
(``portal.money.money_formatter``); its text must stay Babel's, character for character."""

from __future__ import annotations

import random

import pytest

from portal.money import babel_money, format_money, money_formatter, supported_currencies

LOCALES = ["en", "fr", "nl", "de", "en_BE", "fr_BE", "nl_BE", "de_BE", "en_GB", "en_US",
           "en_IN", "de_AT", "de_LU", "fr_LU", "nl_NL", "fr_CH", "de_CH"]  # fmt: skip
AMOUNTS = [0, 1, -1, 5, 9, 10, 99, 100, 101, 999, 1000, 1001, 1234, 12345, 99999, 123456,
           1234567, 100000000, 123456789012345, -5, -100, -123456, -1234567]  # fmt: skip


@pytest.mark.parametrize("locale", LOCALES)
def test_every_currency_reads_as_babel_writes_it(locale):
    draw = random.Random(locale)
    amounts = AMOUNTS + [draw.randrange(-(10**12), 10**12) for _ in range(30)]
    differ = [
        (currency, amount, format_money(amount, currency, locale))
        for currency in sorted(supported_currencies())
        for amount in amounts
        if format_money(amount, currency, locale) != babel_money(amount, currency, locale)
    ]
    assert differ == []


def test_the_pattern_is_taken_apart_once():
    assert money_formatter("EUR", "fr") is money_formatter("EUR", "fr")
    assert money_formatter("EUR", "fr") is not money_formatter("EUR", "nl")


def test_grouping_signs_and_precision():
    assert format_money(-123456, "EUR", "en") == "-€1,234.56"
    assert format_money(123456789, "EUR", "de") == "1.234.567,89\u00a0€"
    assert format_money(1234567, "KWD", "en") == "KWD1,234.567"  # Babel applies no currency spacing
    assert format_money(5, "EUR", "en") == "€0.05"
    assert format_money(100000000, "INR", "en_IN") == "₹10,00,000.00"  # lakh grouping
    # Swiss separators are Babel's (which drops its own apostrophes): left to Babel.
    assert format_money(123456789, "CHF", "de_CH") == babel_money(123456789, "CHF", "de_CH")
