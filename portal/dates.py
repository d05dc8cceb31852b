"""Dates and times the way the merchant's customers read them.

The language is the customer's; the *territory* is the merchant's country, so a Belgian
shop's English reads ``06/11/26`` and ``14:05`` (en_BE), never the US ``11/6/26``; the
clock is the merchant's time zone, shown beside every time (the support console shows
the same instant in the agent's zone, Brussels by default, with its zone too).
Money keeps the language's own format (``€125.00`` in English, ``€ 125,00`` in Dutch).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError, localedata
from babel.core import get_global
from babel.dates import format_date, format_time

DEFAULT_ZONE = "Europe/Brussels"

# Babel keeps a locale's whole CLDR data once it is loaded, its parents' too (nl_BE, nl and
# root: about 0.5 MB each, 3 MB for the eight locales a Belgian shop's pages use). The
# portal formats numbers, money, days and times; it never names units, languages,
# territories or time zones through Babel (a zone is shown by its key), nor formats
# intervals, lists, compact numbers or durations. (Currency names stay: Babel's money
# formatter looks them up for every amount, whatever the pattern.) Those parts are dropped
# at a locale's first use, so a web worker does not hold them (bench/README.md, Memory).
UNUSED_CLDR = (
    "character_order", "compact_currency_formats", "compact_decimal_formats",
    "compound_unit_patterns", "currency_unit_patterns", "date_fields", "datetime_skeletons",
    "day_period_rules", "interval_formats", "languages", "list_patterns",
    "measurement_systems", "meta_zones", "scripts", "territories", "time_zones",
    "unit_display_names", "unit_patterns", "variants", "zone_formats",
)  # fmt: skip


@cache
def formatting_locale(language: str, country: str | None) -> str:
    """``en`` + ``BE`` → ``en_BE``; ``en`` + a country Babel lacks → ``en_GB`` (the
    international English; ``en_US`` only for a US merchant); else the language."""
    language = (language or "en").split("_")[0]
    if country:
        try:
            Locale.parse(f"{language}_{country.upper()}")
            return f"{language}_{country.upper()}"
        except (UnknownLocaleError, ValueError):
            pass
    return "en_GB" if language == "en" else language


@cache
def babel_locale(code: str) -> Locale:
    """Babel parses a locale given as text at every call: once per process here (dates
    and money), its unused CLDR data dropped then."""
    locale = Locale.parse(code)
    trim_locale_data(str(locale))
    return locale


def trim_locale_data(name: str) -> None:
    """Drop what the portal never formats from a locale's data and its parents' (Babel's
    ``load`` returns the one cached dictionary every ``Locale`` of that name reads)."""
    while True:
        data = localedata.load(name)
        for key in UNUSED_CLDR:
            data.pop(key, None)
        if name == "root":
            return
        # Babel's own inheritance: an exception (en_BE → en_150), else the shorter name.
        parent = get_global("parent_exceptions").get(name)
        name = parent or (name.rsplit("_", 1)[0] if "_" in name else "root")


@cache
def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def local_day(value: date | datetime, fmt: str, locale: str, zone_name: str | None) -> str:
    """A day (``6 November 2026``); an instant is first moved to the merchant's clock."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        value = aware.astimezone(zone(zone_name)).date()
    return format_date(value, fmt, locale=babel_locale(locale))


def local_moment(value: datetime, locale: str, zone_name: str | None) -> str:
    """An instant on the merchant's clock with its zone: ``6 Nov 2026, 14:05 (Europe/Brussels)``."""
    tz = zone(zone_name)
    aware = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(tz)
    day = format_date(aware.date(), "medium", locale=babel_locale(locale))
    time = format_time(aware, "short", locale=babel_locale(locale))
    return f"{day}, {time} ({tz.key})"
