"""Cross-cutting HTTP concerns: locale choice, security headers, health, error pages."""

from __future__ import annotations

import logging
import re
import secrets

import flask_babel
from flask import Flask, Response, g, jsonify, render_template, request
from flask_babel import get_locale
from werkzeug.exceptions import HTTPException

SUPPORTED_LOCALES = ("en", "fr", "nl")


def select_locale() -> str:
    """The request's locale: set by the view (customer's, chosen, merchant's), else the browser."""
    chosen = getattr(g, "locale", None)
    if chosen in SUPPORTED_LOCALES:
        return chosen
    return request.accept_languages.best_match(SUPPORTED_LOCALES) or "en"


def format_money_here(amount: int, currency: str) -> str:
    """Money formatted for the request's locale (``€ 12,50`` in nl)."""
    from portal.money import format_money

    return format_money(amount, currency, str(get_locale() or "en"))


def format_amount_here(amount: int, currency: str) -> str:
    """A plain number for an input field (``128,40`` in fr/nl), without the currency sign."""
    from babel.numbers import format_decimal

    from portal.money import precision, to_major

    digits = precision(currency)
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(to_major(amount, currency), pattern, locale=str(get_locale() or "en"))


def accent_colours(colour: str | None) -> tuple[str, str]:
    """The merchant's accent and a text colour readable on it (WCAG AA, 4.5:1)."""
    if not colour or not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        colour = "#1f5f8b"

    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    on_white = 1.05 / (luminance(colour) + 0.05)
    return colour, "#ffffff" if on_white >= 4.5 else "#111111"


def csp_nonce() -> str:
    """A per-response nonce for the few ``<script>`` tags the pages load."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if "Content-Security-Policy" not in headers:
        ancestors = getattr(g, "frame_ancestors", None) or "'none'"
        extra_script = getattr(g, "csp_script_src", "")
        extra_frame = getattr(g, "csp_frame_src", "")
        extra_connect = getattr(g, "csp_connect_src", "")
        nonce = f" 'nonce-{g.csp_nonce}'" if "csp_nonce" in g else ""
        headers["Content-Security-Policy"] = (
            "default-src 'self'; "
            f"script-src 'self'{nonce}{extra_script}; "
            f"style-src 'self'{nonce}; img-src 'self' data: https:; "
            f"connect-src 'self'{extra_connect}; "
            f"frame-src 'self'{extra_frame}; "
            f"frame-ancestors {ancestors}; "
            "base-uri 'none'; form-action 'self'; object-src 'none'"
        )
    if request.is_secure or request.headers.get("X-Forwarded-Proto") == "https":
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    return response


class MaskTokens(logging.Filter):
    """Access logs never show a whole link token: ``/p/pr_5kWq…``."""

    pattern = re.compile(r"(/p/[A-Za-z0-9_]{0,11})[A-Za-z0-9_.\-]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.pattern.sub(r"\1…", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def init_app(app: Flask) -> None:
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskTokens) for f in logger.filters):
            logger.addFilter(MaskTokens())
    app.after_request(_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.jinja_env.globals["format_money"] = format_money_here
    app.jinja_env.globals["accent_colours"] = accent_colours
    app.jinja_env.globals["format_amount"] = format_amount_here
    app.jinja_env.globals["format_date"] = flask_babel.format_date
    app.jinja_env.globals["format_datetime"] = flask_babel.format_datetime
    app.jinja_env.globals["get_locale"] = lambda: str(get_locale() or "en")

    @app.get("/healthz")
    def healthz() -> Response:
        from sqlalchemy import text

        from portal.extensions import db

        db.session.execute(text("SELECT 1"))
        return jsonify(status="ok")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/"):
            from portal.api.views import error_response

            return error_response(exc.code or 500, _api_code(exc.code), exc.description)
        return (
            render_template("error.html", code=exc.code, title=exc.name),
            exc.code or 500,
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        from portal.extensions import db

        db.session.rollback()
        if request.path.startswith("/api/"):
            from portal.api.views import error_response

            return error_response(500, "internal_error", "Something went wrong on our side.")
        return render_template("error.html", code=500, title="Error"), 500


def _api_code(status: int | None) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }.get(status or 500, "error")
