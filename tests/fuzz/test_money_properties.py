"""Property tests for money: what the portal shows, it reads back, in every locale; and
what a customer or a merchant types is an amount or a documented refusal, never a crash."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from flask import Flask
from flask_babel import force_locale
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from portal.customer.forms import parse_amount, parse_pay_form
from portal.money import MoneyError, format_money, precision, to_major, to_minor
from portal.providers.sandbox import parse_card_form
from portal.web import format_amount_here, format_money_here
from tests.conftest import make_app
from tests.fuzz import scaled

# No minor unit, two, three; and ones with a symbol after the amount in some locales.
CURRENCIES = ["EUR", "USD", "GBP", "CHF", "JPY", "KWD", "SEK"]
LOCALES = ["en", "fr", "nl"]
AMOUNTS = st.integers(min_value=1, max_value=10**11)
SETTINGS = settings(max_examples=scaled(300), deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module", autouse=True)
def _app() -> Iterator[Flask]:
    """The templates' own helpers need an app for the locale (no database is touched)."""
    app = make_app("sqlite://")
    with app.app_context():
        yield app


def input_format(amount: int, currency: str, locale: str) -> str:
    """What the pay form pre-fills: the template helper itself, in the customer's locale."""
    with force_locale(locale):
        return format_amount_here(amount, currency)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("currency", CURRENCIES)
@SETTINGS
@given(amount=AMOUNTS)
def test_minor_major_round_trip(amount, currency, locale):
    assert to_minor(to_major(amount, currency), currency) == amount
    assert to_minor(str(to_major(amount, currency)), currency) == amount


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("currency", CURRENCIES)
@SETTINGS
@given(amount=AMOUNTS)
def test_what_the_form_shows_is_read_back(amount, currency, locale):
    assert parse_amount(input_format(amount, currency, locale), currency, locale) == amount


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("currency", CURRENCIES)
@SETTINGS
@given(amount=AMOUNTS)
def test_displayed_money_is_read_back(amount, currency, locale):
    """A customer copying the amount from the page ('€ 1.234,50') pays that amount."""
    assert parse_amount(format_money(amount, currency, locale), currency, locale) == amount
    with force_locale(locale):
        shown = format_money_here(amount, currency)
    assert parse_amount(shown, currency, locale) == amount


@pytest.mark.parametrize("locale", LOCALES)
@SETTINGS
@given(text=st.text(max_size=40))
def test_garbage_never_raises_and_never_pays_nothing(text, locale):
    amount = parse_amount(text, "EUR", locale)
    assert amount is None or amount > 0


# Anything: text, number-like text with exponents and signs, every Decimal (NaN, sNaN,
# infinities, huge and tiny exponents).
GARBAGE = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[-+]?\d{0,20}(\.\d{0,8})?([eE][-+]?\d{1,12})?\Z"),
    st.sampled_from(["NaN", "sNaN", "-sNaN", "Infinity", "-inf", "1e999999999", "1e-999999999"]),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.integers(),
)


@pytest.mark.parametrize("currency", ["JPY", "EUR", "KWD"])
@SETTINGS
@given(major=GARBAGE)
def test_to_minor_gives_the_exact_amount_or_a_money_error(major, currency):
    try:
        minor = to_minor(major, currency)
    except MoneyError:
        return  # the documented refusal; anything else fails the test
    assert isinstance(minor, int)
    assert Decimal(minor).scaleb(-precision(currency)) == Decimal(str(major))


# Any text, and text of what str.isdigit() takes: digits of every script ("١٢") and
# others ("²", "①") that int() refuses.
DIGITS = st.sampled_from([c for c in map(chr, range(0x20000)) if c.isdigit()])
TYPED = st.one_of(st.text(max_size=40), st.text(DIGITS, min_size=1, max_size=20))


@pytest.mark.parametrize("field", ["amount", "amount_choice"])
@SETTINGS
@given(text=TYPED)
def test_the_pay_form_never_raises(field, text):
    form = parse_pay_form(MultiDict({field: text}), "EUR", "nl")
    if form.error:
        assert form.error == "amount_invalid" and form.amount is None
    else:
        assert form.amount is None or form.amount >= 0


@SETTINGS
@given(number=TYPED | st.text(DIGITS, min_size=12, max_size=19), expiry=TYPED, cvc=TYPED)
def test_the_card_form_never_raises(number, expiry, cvc):
    card, errors = parse_card_form(MultiDict({"card_number": number, "expiry": expiry, "cvc": cvc}))
    assert "card_number" in errors or (card.isascii() and card.isdigit())


@SETTINGS
@given(thousandths=st.integers(min_value=1, max_value=10**12).filter(lambda n: n % 10))
def test_more_decimals_than_the_currency_has_are_refused(thousandths):
    with pytest.raises(MoneyError):
        to_minor(Decimal(thousandths).scaleb(-3), "EUR")
    assert parse_amount(str(Decimal(thousandths).scaleb(-3)), "EUR", "en") is None


@pytest.mark.parametrize(
    ("text", "currency", "locale", "expected"),
    [
        ("25,50", "EUR", "fr", 2550),
        ("25.50", "EUR", "fr", 2550),  # a dot typed on a French phone still means cents
        ("€ 1.234,50", "EUR", "nl", 123450),
        ("1 234,50 €", "EUR", "fr", 123450),
        ("1,234", "EUR", "en", 123400),
        ("12.345", "EUR", "nl", 1234500),
        ("12.345", "EUR", "en", None),  # an English reader meant 12.345 euros: refused
        ("0.001", "EUR", "nl", None),  # not grouping, too many decimals
        ("¥1,234", "JPY", "en", 1234),
        ("1.234", "JPY", "nl", 1234),
        ("1,234", "KWD", "en", 1234000),  # English groups with commas
        ("1,234", "KWD", "fr", 1234),  # French decimals with commas: 1.234 dinars
        ("0", "EUR", "en", None),
        ("-5", "EUR", "en", None),  # a sign, an exponent, letters: refused, never stripped
        ("1e3", "EUR", "en", None),
        ("12abc34", "EUR", "en", None),
        ("2 x 10", "EUR", "en", None),
    ],
)
def test_parse_examples(text, currency, locale, expected):
    assert parse_amount(text, currency, locale) == expected
