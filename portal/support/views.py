"""The support console, ``/support``: thin views over the services of :mod:`portal.support`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale, refresh
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.wrappers import Response
from wtforms import ValidationError

from portal.db_types import utcnow
from portal.extensions import db, limiter
from portal.ledger.models import Event, event_body
from portal.states import RequestStatus
from portal.support import actions, auth, timeline
from portal.support import dashboard as board
from portal.support import search as finder
from portal.web import SUPPORTED_LOCALES

bp = Blueprint("support", __name__, url_prefix="/support")
# Every console page, per client address; sign-in has its own, stricter limits.
limiter.shared_limit(lambda: current_app.config["PORTAL_CONSOLE_RATE_LIMIT"], scope="console")(bp)

SECURE_COOKIE = "__Host-portal_support"
# Plain-http development servers (make run, the browser tests) cannot set a __Host- cookie.
DEV_COOKIE = "portal_support_dev"


def _cookie_name() -> str:
    """``__Host-`` (Secure) whenever the portal is served over https, as in production."""
    public_https = current_app.config["PORTAL_BASE_URL"].startswith("https://")
    if request.is_secure or public_https or current_app.config["PORTAL_ENV"] == "production":
        return SECURE_COOKIE
    return DEV_COOKIE


def staff_time(value: Any) -> str:
    """A time in the agent's own time zone."""
    if value is None:
        return "—"
    zone = ZoneInfo(g.staff.time_zone) if getattr(g, "staff", None) else ZoneInfo("UTC")
    return format_datetime(value, "medium", tzinfo=zone, locale=str(get_locale() or "en"))


@bp.app_template_filter("staff_time")
def _staff_time_filter(value: Any) -> str:
    return staff_time(value)


@bp.before_request
def _load_staff() -> Response | None:
    g.locale = request.cookies.get("portal_support_locale") or None
    refresh()  # the locale is decided per request, never taken from an earlier one
    g.staff = None
    session = auth.load_session(request.cookies.get(_cookie_name()))
    if session is not None:
        g.staff, g.staff_session = session.user, session.id
    if request.endpoint in ("support.login", "support.static"):
        return None
    if g.staff is None:
        return redirect(url_for("support.login"))
    return None


@bp.before_request
def _fresh_forms_only() -> None:
    """Console forms live an hour (``PORTAL_CONSOLE_CSRF_TIME_LIMIT``), pay forms longer:
    the app-wide check has run with the longer limit, this one adds the console's."""
    if request.method != "POST" or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    try:
        validate_csrf(
            request.form.get("csrf_token"),
            time_limit=current_app.config["PORTAL_CONSOLE_CSRF_TIME_LIMIT"],
        )
    except ValidationError as refused:
        raise CSRFError(refused.args[0]) from None


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not g.staff.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def _login_account_key() -> str:
    return "login:" + request.form.get("email", "").strip().lower()[:254]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PORTAL_LOGIN_RATE_LIMIT"], methods=["POST"])
# Per account too: a password guessed slowly from many addresses still hits a wall.
@limiter.limit(
    lambda: current_app.config["PORTAL_LOGIN_ACCOUNT_RATE_LIMIT"],
    key_func=_login_account_key,
    methods=["POST"],
    scope="login-account",
)
def login() -> Response:
    error = False
    if request.method == "POST":
        try:
            user = auth.authenticate(
                request.form.get("email", ""),
                request.form.get("password", ""),
                request.form.get("code") or None,
                request.remote_addr or "",
            )
        except auth.LoginFailed:
            error = True
        else:
            auth.end_session(request.cookies.get(_cookie_name()))  # never reuse a session
            session_id = auth.start_session(user)
            response = redirect(url_for("support.dashboard"), 303)
            response.set_cookie(
                _cookie_name(), session_id, path="/", httponly=True, samesite="Lax",
                secure=_cookie_name() == SECURE_COOKIE,
            )  # fmt: skip
            return response
    return make_response(render_template("support/login.html", error=error), 401 if error else 200)


@bp.post("/logout")
def logout() -> Response:
    auth.end_session(g.staff_session)
    response = redirect(url_for("support.login"), 303)
    response.delete_cookie(_cookie_name(), path="/")
    return response


@bp.post("/language")
def language() -> Response:
    target = request.form.get("next", "")
    if not target.startswith("/support") or "//" in target or "\\" in target:
        target = url_for("support.dashboard")  # never an open redirect
    response = redirect(target, 303)
    if request.form.get("lang") in SUPPORTED_LOCALES:
        response.set_cookie("portal_support_locale", request.form["lang"], path="/support",
                            httponly=True, samesite="Lax",
                            secure=_cookie_name() == SECURE_COOKIE)  # fmt: skip
    return response


@bp.get("/")
def dashboard() -> Response:
    now = utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return make_response(
        render_template(
            "support/dashboard.html",
            today=board.stats(g.staff, today),
            month=board.stats(g.staff, now - timedelta(days=30)),
            daily=board.daily_paid(g.staff),
            callbacks=board.callbacks_per_merchant(g.staff),
            attention=board.needs_attention(g.staff),
        )
    )


def _date(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


@bp.get("/search")
def search() -> Response:
    query = finder.SearchQuery(
        text=request.args.get("q", "")[:200],
        status=request.args.get("status", "") if request.args.get("status") in {
            s.value for s in RequestStatus} else "",
        date_from=_date("from"),
        date_to=_date("to"),
    )  # fmt: skip
    results = finder.search(g.staff, query)
    return make_response(
        render_template(
            "support/search.html", query=query, results=results, statuses=list(RequestStatus)
        )
    )


def _request_or_404(request_id: str):
    pr = finder.get_request(g.staff, request_id)
    if pr is None:
        abort(404)
    return pr


@bp.get("/requests/<request_id>")
def request_detail(request_id: str) -> Response:
    pr = _request_or_404(request_id)
    entries = timeline.timeline(pr)
    return make_response(render_template("support/request.html", pr=pr, entries=entries, json=json))


@bp.get("/requests/<request_id>/confirm/<action>")
def confirm(request_id: str, action: str) -> Response:
    """Asks before acting: what will happen, and why (GET changes nothing)."""
    pr = _request_or_404(request_id)
    if action not in actions.ACTIONS:
        abort(404)
    if action in actions.ADMIN_ACTIONS and not g.staff.is_admin:
        abort(403)
    target = request.args.get("target", "")
    return make_response(
        render_template(
            "support/confirm.html", pr=pr, action=action, target=target,
            ask_email=action == "resend_receipt" and actions.needs_receipt_address(pr, target),
        )
    )  # fmt: skip


@bp.post("/requests/<request_id>/do/<action>")
def act(request_id: str, action: str) -> Response:
    pr = _request_or_404(request_id)
    if action in actions.ADMIN_ACTIONS and not g.staff.is_admin:
        abort(403)
    try:
        form = request.form
        actions.perform(g.staff, pr, action, form.get("reason", ""), form.get("target", ""),
                        form.get("email", "")[:254])  # fmt: skip
    except actions.ActionRefused as refused:
        target = request.form.get("target", "")
        return make_response(
            render_template(
                "support/confirm.html", pr=pr, action=action, target=target,
                error=refused.message,
                ask_email=action == "resend_receipt" and actions.needs_receipt_address(pr, target),
            ),
            422,
        )  # fmt: skip
    return redirect(url_for("support.request_detail", request_id=pr.id, done=action), 303)


@bp.get("/audit")
@admin_only
def audit() -> Response:
    entries = actions.audit_entries(
        g.staff,
        action=request.args.get("action", ""),
        staff=request.args.get("staff", ""),
        target=request.args.get("target", ""),
    )
    return make_response(
        render_template(
            "support/audit.html", entries=entries, actions=(*actions.ACTIONS, *auth.ACCOUNT_EVENTS)
        )
    )


@bp.get("/events/<event_id>.json")
def event_json(event_id: str) -> Response:
    """The raw JSON of an event, as the merchant's ledger receives it."""
    event = db.session.get(Event, event_id)
    if event is None or not finder.in_scope(g.staff, event.merchant_id):
        abort(404)
    response = make_response(json.dumps(event_body(event), indent=2, ensure_ascii=False))
    response.mimetype = "application/json"
    return response
