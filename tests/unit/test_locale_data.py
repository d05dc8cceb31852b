"""A locale's unused CLDR data is dropped at its first use (portal/dates.py): the money,
days and times the portal writes must read exactly as with Babel's whole data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Every way the portal writes a number, an amount, a day or a moment, in each language with
# the territories its merchants use (en_BE inherits through en_150 and en_001).
PROBE = r"""
import json, sys
from datetime import date, datetime
from zoneinfo import ZoneInfo
from babel import Locale, localedata
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency, format_decimal, get_currency_symbol, get_decimal_symbol
codes = ["en", "fr", "nl", "de", "en_BE", "fr_BE", "nl_BE", "de_BE", "en_GB", "en_US",
         "fr_CH", "de_AT", "nl_NL", "fr_FR", "de_DE"]
if sys.argv[1] == "trimmed":
    from portal.dates import babel_locale
    for code in codes:
        babel_locale(code)
out = []
moment = datetime(2026, 11, 6, 13, 5, 9, tzinfo=ZoneInfo("UTC"))
here = ZoneInfo("Europe/Brussels")
for code in codes:
    loc = Locale.parse(code)
    for fmt in ("short", "medium", "long", "full"):
        out.append(format_date(date(2026, 11, 6), fmt, locale=loc))
        out.append(format_time(moment, "short", tzinfo=here, locale=loc))
        out.append(format_datetime(moment, "medium", tzinfo=here, locale=loc))
    for currency in ("EUR", "CHF", "GBP", "USD", "JPY", "BHD"):
        out.append(format_currency(-1234567.891, currency, locale=loc))
        out.append(get_currency_symbol(currency, locale=loc))
        out.append(str(loc.currency_formats["standard"]))
    out.append(format_decimal(1234567.5, "#,##0.00", locale=loc))
    out.append(get_decimal_symbol(locale=loc))
out.append(sorted(localedata.load("nl").keys()))
print(json.dumps(out))
"""


def run(mode: str) -> list:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=ROOT, check=True, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_trimmed_locales_write_what_whole_ones_do():
    whole, trimmed = run("whole"), run("trimmed")
    assert "languages" in whole[-1] and "unit_patterns" in whole[-1]
    assert "languages" not in trimmed[-1] and "unit_patterns" not in trimmed[-1]
    assert "number_symbols" in trimmed[-1]
    assert trimmed[:-1] == whole[:-1]
    assert len(whole) > 300
