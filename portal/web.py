"""Cross-cutting HTTP concerns: locale choice, security headers, health, error pages."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import flask_babel
from babel.numbers import format_decimal
from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    make_response,
    render_template,
    request,
)
from flask_babel import get_locale
from flask_wtf.csrf import CSRFError
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from portal.api.views import error_response as api_error_response
from portal.dates import formatting_locale, local_day, local_moment
from portal.extensions import db
from portal.money import format_money, precision, to_major
from portal.payments.methods import method_label
from portal.states import InvalidTransition

SUPPORTED_LOCALES = ("en", "fr", "nl", "de")


def select_locale() -> str:
    """The request's locale: set by the view (customer's, chosen, merchant's), else the browser."""
    chosen = getattr(g, "locale", None)
    if chosen in SUPPORTED_LOCALES:
        return chosen
    return request.accept_languages.best_match(SUPPORTED_LOCALES) or "en"


def format_money_here(amount: int, currency: str) -> str:
    """Money formatted for the request's locale (``€ 12,50`` in nl)."""
    return format_money(amount, currency, str(get_locale() or "en"))


def format_amount_here(amount: int, currency: str) -> str:
    """A plain number for an input field (``128,40`` in fr/nl), without the currency sign."""
    digits = precision(currency)
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(to_major(amount, currency), pattern, locale=str(get_locale() or "en"))


def _language() -> str:
    return str(get_locale() or "en")


def _dates_locale() -> str:
    """The merchant's country's way of writing dates in the page's language (set with the
    page's locale by the view that knows the merchant)."""
    return formatting_locale(_language(), g.get("merchant_country"))


def format_date_here(value: date | datetime | None, fmt: str = "medium") -> str:
    """A day as the merchant's customers write it (``06/11/26`` for a Belgian shop)."""
    if value is None:
        return ""
    # A date never wraps mid-date ("6 november" / "2026"): its spaces do not break.
    return local_day(value, fmt, _dates_locale(), g.get("time_zone")).replace(" ", "\u00a0")


def format_moment_here(value: datetime | None) -> str:
    """An instant on the merchant's clock, with its zone."""
    return "" if value is None else local_moment(value, _dates_locale(), g.get("time_zone"))


def _bound_gettext(func: Callable[[str], str]) -> Callable[..., str]:
    """Jinja's new-style ``gettext`` (escaped, ``%`` formatted) over one catalogue."""

    @pass_eval_context
    def gettext(eval_ctx: EvalContext, string: str, /, **variables: Any) -> str:
        rv = func(string)
        # As Jinja's own: a catalogue string is markup; the variables are escaped by %.
        return (Markup(rv) if eval_ctx.autoescape else rv) % variables  # noqa: S704

    return gettext


def _bound_ngettext(func: Callable[[str, str, int], str]) -> Callable[..., str]:
    @pass_eval_context
    def ngettext(eval_ctx: EvalContext, singular: str, plural: str, num: int, /,
                 **variables: Any) -> str:  # fmt: skip
        variables.setdefault("num", num)
        rv = func(singular, plural, num)
        # As Jinja's own: a catalogue string is markup; the variables are escaped by %.
        return (Markup(rv) if eval_ctx.autoescape else rv) % variables  # noqa: S704

    return ngettext


def bound_helpers() -> dict[str, Any]:
    """The page's translations and formatters, each looked up once per render instead of
    at every call (a statement page makes about 60 ``gettext`` and 30 format calls, each
    of which would find the locale, the catalogue and the merchant's formats again).
    Passed in a template's context, they take the place of the globals of the same name,
    with the same output."""
    translations = flask_babel.get_translations()
    language = _language()
    dates_locale = formatting_locale(language, g.get("merchant_country"))
    zone_name = g.get("time_zone")

    def money(amount: int, currency: str) -> str:
        return format_money(amount, currency, language)

    def day(value: date | datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return ""
        return local_day(value, fmt, dates_locale, zone_name).replace(" ", "\u00a0")

    return {
        "gettext": _bound_gettext(translations.ugettext),
        "ngettext": _bound_ngettext(translations.ungettext),
        "format_money": money,
        "format_date": day,
        "get_locale": lambda: language,
    }


def label(text: str) -> str:
    """``Date:`` — in French ``Date\u202f:`` (a narrow no-break space before the colon)."""
    return f"{text}\u202f:" if _language().startswith("fr") else f"{text}:"


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


APPLE_PAY_PATH = "/.well-known/apple-developer-merchantid-domain-association"


def apple_pay_association() -> Response:
    """What Apple fetches to let this domain offer Apple Pay (through Stripe): the file of
    ``PORTAL_APPLE_PAY_DOMAIN_ASSOCIATION`` (its content, or ``@path``); 404 when unset."""
    value = str(current_app.config.get("PORTAL_APPLE_PAY_DOMAIN_ASSOCIATION") or "")
    body = Path(value[1:]).read_bytes() if value.startswith("@") else value.encode()
    if not body.strip():
        abort(404)
    response = Response(body, mimetype="text/plain")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def _forget_merchant_clock(endpoint: str | None, values: dict[str, object] | None) -> None:
    """Each request starts without an earlier one's locale or merchant (an app context may
    be reused); URL processors run first, so the customer's pages decide before any check."""
    for name in ("locale", "merchant_country", "time_zone", "link_request_id", "link_request"):
        g.pop(name, None)


def _refuse_nul_characters() -> None:
    """NUL characters have no place in any input and PostgreSQL cannot store them: refuse
    them up front (path, query, form, JSON escapes) with a 400 rather than fail later."""
    if "\x00" in request.path or any("\x00" in k + v for k, v in request.args.items(multi=True)):
        abort(400, description="Text may not contain NUL characters.")
    if request.path.startswith("/api/"):
        # The raw body (cached: the view reads it again); never the form parser.
        body = request.get_data()
        if b"\x00" in body or b"\\u0000" in body:
            abort(400, description="Text may not contain NUL characters.")
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") and any(
        "\x00" in k + v for k, v in request.form.items(multi=True)
    ):
        abort(400, description="Text may not contain NUL characters.")


def retry_after_only_when_waiting(response: Response) -> Response:
    """Flask-Limiter adds ``Retry-After`` to every limited response; it means "wait" on a
    429 or a 503 only, so nowhere else (registered before the limiter: runs after it)."""
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def init_app(app: Flask) -> None:
    app.jinja_env.globals["format_money"] = format_money_here
    app.jinja_env.globals["accent_colours"] = accent_colours
    app.jinja_env.globals["format_amount"] = format_amount_here
    app.jinja_env.globals["format_date"] = format_date_here
    app.jinja_env.globals["format_datetime"] = flask_babel.format_datetime
    app.jinja_env.globals["format_moment"] = format_moment_here
    app.jinja_env.globals["label"] = label
    app.jinja_env.globals["get_locale"] = lambda: str(get_locale() or "en")
    app.jinja_env.globals["payment_method"] = method_label
    app.url_value_preprocessor(_forget_merchant_clock)  # before the blueprints' own
    app.add_url_rule(APPLE_PAY_PATH, "apple_pay_association", apple_pay_association)
    app.before_request(_refuse_nul_characters)

    @app.errorhandler(InvalidTransition)
    def invalid_transition(exc: InvalidTransition):
        # A status change the table refuses that no service turned into an outcome: nothing
        # is written, the caller is told plainly (services flag what support must see).
        app.logger.warning("refused status change: %s", exc)
        db.session.rollback()
        message = "This change is not possible in the object's current state."
        return _error(409, "invalid_state", message, "Conflict")

    @app.errorhandler(DataError)
    def data_error(exc: DataError):
        # A value the database cannot store (out of range, bad encoding) that validation
        # let through: the client's mistake, refused whole; nothing was written.
        app.logger.warning("value refused by the database: %s", type(exc.orig).__name__)
        db.session.rollback()
        return _error(400, "invalid_value", "A value in the request is not valid.", "Bad request")

    @app.errorhandler(CSRFError)
    def form_expired(exc: CSRFError):
        # A form kept open too long (or sent without its token, or signed with a key
        # since removed): say so, and lead back to a fresh copy of the form.
        db.session.rollback()
        page = render_template("error.html", code=400, expired_form=_form_again(app))
        return page, 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Keep what the exception says about itself (Allow on a 405, Retry-After…).
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        status = exc.code or 500
        return _error(status, _api_code(status), exc.description or "", exc.name, headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(exc: Exception):
        # The database is restarting or unreachable: a 503 the client (or Stripe) retries;
        # the pool's pre-ping replaces dead connections once it is back.
        app.logger.warning("database unavailable: %s", type(exc).__name__)
        with contextlib.suppress(Exception):  # the connection may already be gone
            db.session.rollback()
        message = "Temporarily unavailable; retry shortly."
        return _error(503, "service_unavailable", message, "Unavailable", {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        db.session.rollback()
        return _error(500, "internal_error", "Something went wrong on our side.", "Error")


def _form_again(app: Flask) -> str:
    """Where a fresh copy of the refused form is: the page that shows it."""
    path = request.path
    if path.startswith("/p/") and path.endswith("/pay"):
        return path.removesuffix("/pay")
    if path.startswith("/support/") and "/do/" in path:
        return path.replace("/do/", "/confirm/", 1)
    try:
        app.url_map.bind("localhost").match(path, method="GET")
    except (NotFound, MethodNotAllowed):
        return "/support/" if path.startswith("/support/") else "/"
    except HTTPException:  # a redirect: the same page under its canonical address
        pass
    return path


def _error(
    status: int, api_code: str, message: str, title: str, headers: dict[str, str] | None = None
):
    """An error as the caller reads it: JSON with a code for the API, the localized error
    page for everyone else."""
    if request.path.startswith("/api/"):
        return api_error_response(status, api_code, message, None, headers)
    return render_template("error.html", code=status, title=title), status, headers or {}


def error_response(
    status: int, api_code: str, message: str, title: str, headers: dict[str, str] | None = None
) -> Response:
    """:func:`_error` as a response object (for hooks that replace the answer)."""
    return make_response(_error(status, api_code, message, title, headers))


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
