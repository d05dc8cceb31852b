"""Money: integer minor units plus an ISO 4217 currency code.

Precision comes from Babel's CLDR data (JPY 0, EUR 2, KWD 3), so conversion
between a major-unit string such as ``"10000.00"`` and minor units never goes
through floats.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache

from babel.core import get_global
from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    get_territory_currencies,
)

from portal.dates import babel_locale


class MoneyError(ValueError):
    """An amount or currency that cannot be used."""


@cache
def supported_currencies(on: date | None = None) -> frozenset[str]:
    """The currencies that are legal tender somewhere on ``on`` (today), from CLDR through
    Babel: no historical or fund codes, and none a country left (BGN since 2026-01)."""
    day = on or date.today()
    return frozenset(
        code
        for territory in get_global("territory_currencies")
        for code in get_territory_currencies(territory, day, tender=True)
    )


def is_supported_currency(code: str) -> bool:
    return isinstance(code, str) and code in supported_currencies()


def precision(currency: str) -> int:
    """Number of minor-unit digits of ``currency`` (JPY 0, EUR 2, KWD 3)."""
    return get_currency_precision(currency)


def to_minor(major: str | Decimal | int, currency: str) -> int:
    """``"10000.00"`` EUR → ``1000000``. Refuses more digits than the currency has."""
    try:
        value = Decimal(str(major))
    except InvalidOperation as exc:
        raise MoneyError(f"not an amount: {major!r}") from exc
    if not value.is_finite():  # "Infinity", "NaN", "sNaN" are Decimals, not amounts
        raise MoneyError(f"not an amount: {major!r}")
    if not value:
        return 0
    if value.adjusted() > 30:  # "1e999999999": no amount, and no integer to build
        raise MoneyError(f"{major} is out of range")
    # In integers, not in a Decimal context that would round or underflow ("1e-99999999").
    sign, numerals, exponent = value.as_tuple()
    text = "".join(map(str, numerals))
    shift = int(exponent) + precision(currency)
    if shift < 0 and len(text) - len(text.rstrip("0")) < -shift:
        raise MoneyError(f"{major} has more decimals than {currency} allows")
    minor = int(text) * 10**shift if shift >= 0 else int(text) // 10**-shift
    return -minor if sign else minor


def to_major(amount: int, currency: str) -> Decimal:
    """``1250`` EUR → ``Decimal("12.50")``."""
    digits = precision(currency)
    return Decimal(amount).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def format_money(amount: int, currency: str, locale: str = "en") -> str:
    """Locale-aware display: ``€ 1.234,56`` in nl, ``1 234,56 €`` in fr."""
    return money_formatter(currency, str(locale))(amount)


def babel_money(amount: int, currency: str, locale: str) -> str:
    """Babel's own ``format_currency``: what :func:`money_formatter` gives, the slow way."""
    return format_currency(to_major(amount, currency), currency, locale=babel_locale(locale))


@cache
def money_formatter(currency: str, locale: str) -> Callable[[int], str]:
    """``format_money`` for one (currency, locale), with Babel's currency pattern taken
    apart once: a call is then integer arithmetic and joins, about a tenth of Babel's
    ``format_currency`` (which re-reads the pattern, the symbols and the precision and
    goes through ``Decimal`` every time; a statement page formats some 25 amounts). The
    text is Babel's to the character: ``tests/unit/test_money_format.py`` compares both
    for every currency in our languages and their territories. Patterns it does not take
    apart (scientific, significant digits, scaled, currency names) and the Swiss
    apostrophe separator (which Babel's own unquoting removes) are left to Babel."""
    loc = babel_locale(locale)
    pattern = loc.currency_formats["standard"]
    group = get_group_symbol(loc, numbering_system="latn")
    if (
        pattern.exp_prec
        or pattern.scale
        or "@" in pattern.pattern
        or "¤¤¤" in pattern.pattern
        or not pattern.number_pattern
        or "'" in group  # Swiss: Babel's unquoting then takes the separators out
    ):
        return lambda amount: babel_money(amount, currency, locale)
    digits = precision(currency)
    unit = 10**digits
    minimum = pattern.int_prec[0]
    first, rest = pattern.grouping
    decimal = get_decimal_symbol(loc, numbering_system="latn") if digits else ""

    def affix(text: str) -> str:  # as NumberPattern.apply does it, once
        text = text.replace("¤¤", currency.upper()).replace("¤", get_currency_symbol(currency, loc))
        return re.sub(r"'([^']*)'", lambda m: m.group(1) or "'", text)

    prefixes = (affix(pattern.prefix[0]), affix(pattern.prefix[1]))
    suffixes = (affix(pattern.suffix[0]), affix(pattern.suffix[1]))

    def fmt(amount: int) -> str:
        negative = amount < 0
        whole, part = divmod(-amount if negative else amount, unit)
        digits_text = str(whole).rjust(minimum, "0")
        size, grouped = first, ""
        while len(digits_text) > size:
            grouped = group + digits_text[-size:] + grouped
            digits_text, size = digits_text[:-size], rest
        number = digits_text + grouped
        if decimal:
            number += decimal + str(part).rjust(digits, "0")
        return prefixes[negative] + number + suffixes[negative]

    return fmt
