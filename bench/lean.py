"""The lean reference: the customer's statement page done the simplest way on this stack.

Served by the same gunicorn configuration in the same run as the portal and the bare
Flask baseline (``bench.run``), so the gap between the portal and "what Flask, Jinja,
Babel and PostgreSQL can do for this page" is always in the table. It does the work the
portal's page does, each part once:

- the link token checked with the portal's signer (salt and keys);
- **one SQL statement** per page: the request, its merchant and its lines (``json_agg``),
  and the open counter's UPDATE in the same statement (a CTE), on a per-thread psycopg
  connection in autocommit with ``synchronous_commit`` off, as the portal's counter;
- a Jinja template compiled at start-up, one environment per locale with that locale's
  translations installed (``gettext`` bound once, not looked up per call);
- money and date formatters built once per (locale, currency) from Babel's patterns;
- ``Cache-Control: no-store``, a CSP nonce and the link's form token, as the portal.

No ORM, no extensions (limiter, metrics, access log). It is a reference, not a product
page: it shows open statements only and answers anything else with a plain 404.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from babel import Locale
from babel.dates import parse_pattern as parse_date_pattern
from babel.numbers import get_currency_precision
from babel.support import Translations
from flask import Flask, Response, abort, request
from itsdangerous import BadSignature, Signer, TimestampSigner
from jinja2 import Environment, FileSystemLoader, select_autoescape

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ("en", "fr", "nl", "de")
LINK_SALT = "portal.payment-link.v1"  # portal.links
FORM_SALT = "portal.customer-form.v1"

PAGE_SQL = """
WITH opened AS (
    UPDATE payment_requests SET open_count = open_count + 1, last_opened_at = now(),
        first_opened_at = coalesce(first_opened_at, now())
    WHERE id = %(id)s RETURNING id
)
SELECT r.id, r.status, r.currency, r.amount, r.amount_paid, r.customer_name,
       r.customer_locale, r.period_start, r.period_end, r.balance, r.due_date, r.expires_at,
       m.display_name, m.country, m.default_locale, m.support_email,
       (SELECT json_agg(json_build_array(l.date, l.description, l.reference, l.amount)
                        ORDER BY l.position)
          FROM statement_lines l WHERE l.request_id = r.id)
FROM payment_requests r JOIN merchants m ON m.id = r.merchant_id
WHERE r.id = (SELECT id FROM opened) AND r.kind = 'statement'
"""


@cache
def money_formatter(locale: str, currency: str) -> Callable[[int], str]:
    """Babel's currency pattern for (locale, currency), parsed once."""
    loc = Locale.parse(locale)
    pattern = loc.currency_formats["standard"]
    scale = Decimal(10) ** -get_currency_precision(currency)

    def fmt(amount: int) -> str:
        return pattern.apply(Decimal(amount) * scale, loc, currency=currency)

    return fmt


@cache
def date_formatter(locale: str, width: str) -> Callable[[date | None], str]:
    loc = Locale.parse(locale)
    pattern = parse_date_pattern(loc.date_formats[width])

    def fmt(value: date | None) -> str:
        return "" if value is None else pattern.apply(value, loc).replace(" ", "\u00a0")

    return fmt


def _environments() -> dict[str, Environment]:
    envs = {}
    for locale in LOCALES:
        env = Environment(
            loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
            autoescape=select_autoescape(default=True),
            extensions=["jinja2.ext.i18n"],
            auto_reload=False,
        )
        translations = Translations.load(str(ROOT / "translations"), [locale])
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        env.get_template("lean.html")  # compiled now, not at the first page
        envs[locale] = env
    return envs


def create_app() -> Flask:
    app = Flask(__name__)
    keys = [k for k in os.environ.get("PORTAL_SECRET_KEYS", "").split(",") if k]
    link_signer = Signer(list(reversed(keys)), salt=LINK_SALT, digest_method=hashlib.sha256)
    form_signer = TimestampSigner(
        list(reversed(keys)), salt=FORM_SALT, digest_method=hashlib.sha256
    )
    dsn = os.environ["PORTAL_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    envs = _environments()
    local = threading.local()

    def connection() -> psycopg.Connection[Any]:
        conn = getattr(local, "conn", None)
        if conn is None or conn.closed:
            conn = local.conn = psycopg.connect(
                dsn, autocommit=True, options="-c synchronous_commit=off"
            )
        return conn

    @app.get("/p/<token>")
    def page(token: str) -> Response:
        try:
            request_id = link_signer.unsign(token.encode()).decode()
        except (BadSignature, UnicodeDecodeError):
            abort(404)
        row = connection().execute(PAGE_SQL, {"id": request_id}, prepare=True).fetchone()
        if row is None or row[1] not in ("open", "partially_paid"):
            abort(404)
        (rid, _status, currency, amount, paid, customer, customer_locale, start, end, balance,
         due_date, expires_at, merchant, country, default_locale, email, lines) = row  # fmt: skip
        asked = request.args.get("lang")
        locale = asked if asked in LOCALES else customer_locale or default_locale or "en"
        dates_locale = f"{locale}_{country}" if country else locale
        money = money_formatter(locale, currency)
        short, long = date_formatter(dates_locale, "short"), date_formatter(dates_locale, "long")
        nonce = secrets.token_urlsafe(16)
        html = (
            envs[locale]
            .get_template("lean.html")
            .render(
                locale=locale,
                nonce=nonce,
                merchant=merchant,
                support_email=email,
                customer=customer,
                period=(long(start), long(end)) if start and end else None,
                lines=[
                    (short(date.fromisoformat(d)) if d else "", text, ref, money(a), a < 0)
                    for d, text, ref, a in lines or ()
                ],
                balance=money(balance) if balance is not None else None,
                due=money(amount - paid),
                amount=money(amount),
                due_date=long(due_date),
                expires=long(expires_at.date()),
                csrf_token=form_signer.sign(rid.encode()).decode()[len(rid) + 1 :],
                token=token,
            )
        )
        response = Response(html, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; style-src 'self' 'nonce-{nonce}'; frame-ancestors 'none'"
        )
        return response

    @app.get("/healthz")
    def healthz() -> str:
        connection().execute("SELECT 1")
        return "ok"

    return app
