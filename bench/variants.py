"""App variants for before/after experiments: the portal with one setting changed.

Used by ``python -m bench.experiment``; each variant is a gunicorn app spec such as
``bench.variants:no_pre_ping()``. They change configuration, or put back one saving to
measure it against (``whole_locale_data``).
"""

from __future__ import annotations

from flask import Flask

from portal import create_app


def no_pre_ping() -> Flask:
    """No ``pool_pre_ping``: saves the extra round trip at every connection checkout."""
    return create_app({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 300}})


def no_limiter() -> Flask:
    return create_app({"RATELIMIT_ENABLED": False})


def no_pre_ping_no_limiter() -> Flask:
    return create_app(
        {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 300}, "RATELIMIT_ENABLED": False}
    )


def insert_pages_of_10() -> Flask:
    """Statement lines inserted 10 rows per INSERT: each statement stays short enough for
    psycopg to cache its parsed form (it re-parses longer queries at every execution)."""
    return create_app(
        {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "insertmanyvalues_page_size": 10}}
    )


def whole_locale_data() -> Flask:
    """Babel's whole CLDR data kept, as before portal/dates.py dropped the unused parts."""
    import portal.dates

    portal.dates.UNUSED_CLDR = ()
    return create_app()
