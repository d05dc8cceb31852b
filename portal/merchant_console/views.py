"""The merchant console, ``/merchant/``: thin views over the console's services.

Sign-in, invitations and password resets are open pages; everything else needs a
merchant user's session, and every query is scoped to that user's merchant (another
merchant's object is a 404).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
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
from werkzeug.wrappers import Response

from portal.credentials import new_totp_secret, totp_uri
from portal.customer.forms import parse_amount
from portal.delivery.services import deliveries_for
from portal.documents import CARD_SIZES
from portal.errors import ApiError, Invalid, NotFound
from portal.extensions import db, limiter
from portal.links import account_url, link_token, link_url, qr_code_url
from portal.merchant_console import (
    accounts,
    activity,
    connect,
    forms,
    logos,
    requests,
    settings,
)
from portal.merchant_console.models import MerchantUser
from portal.money import to_minor
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import printable_card
from portal.payments import reconcile
from portal.payments.services import payable_range
from portal.states import PaymentStatus, RequestStatus
from portal.web import SUPPORTED_LOCALES

bp = Blueprint("merchant_console", __name__, url_prefix="/merchant")

SECURE_COOKIE = "__Host-portal_merchant"
# Plain-http development servers (make run, the browser tests) cannot set a __Host- cookie.
DEV_COOKIE = "portal_merchant_dev"
LOCALE_COOKIE = "portal_merchant_locale"
LOCALES = SUPPORTED_LOCALES
OPEN_ENDPOINTS = frozenset(
    {"merchant_console.login", "merchant_console.invitation", "merchant_console.reset_request",
     "merchant_console.reset", "merchant_console.language", "merchant_console.logo_image"}
)  # fmt: skip


def _cookie_name() -> str:
    """``__Host-`` (Secure) whenever the portal is served over https, as in production."""
    public_https = current_app.config["PORTAL_BASE_URL"].startswith("https://")
    if request.is_secure or public_https or current_app.config["PORTAL_ENV"] == "production":
        return SECURE_COOKIE
    return DEV_COOKIE


def _set_session_cookie(response: Response, session_id: str) -> None:
    response.set_cookie(
        _cookie_name(), session_id, path="/", httponly=True, samesite="Lax",
        secure=_cookie_name() == SECURE_COOKIE,
    )  # fmt: skip


@bp.before_request
def _load_user() -> Response | None:
    g.locale = request.cookies.get(LOCALE_COOKIE) or None
    refresh()  # the locale is decided per request, never taken from an earlier one
    g.merchant_user = None
    session = accounts.load_session(request.cookies.get(_cookie_name()))
    if session is not None:
        g.merchant_user, g.merchant_session = session.user, session.id
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if g.merchant_user is None:
        return redirect(url_for("merchant_console.login"))
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    if request.endpoint != "merchant_console.logo_image":
        response.headers["Cache-Control"] = "no-store"
    return response


def owner_only(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not g.merchant_user.is_owner:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.app_template_filter("merchant_time")
def merchant_time(value: datetime | None) -> str:
    """A time in the merchant's zone (UTC until the merchant sets one)."""
    if value is None:
        return "—"
    user = getattr(g, "merchant_user", None)
    zone = ZoneInfo(getattr(user.merchant, "time_zone", None) or "UTC") if user else ZoneInfo("UTC")
    return format_datetime(value, "medium", tzinfo=zone, locale=_locale())


def _locale() -> str:
    return str(get_locale() or "en")


def _account_key() -> str:
    return "merchant-login:" + request.form.get("email", "").strip().lower()[:254]


def _rate() -> str:
    return str(current_app.config["PORTAL_LOGIN_RATE_LIMIT"])


def _account_rate() -> str:
    return str(current_app.config["PORTAL_LOGIN_ACCOUNT_RATE_LIMIT"])


# --- signing in -------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_rate, methods=["POST"])
# Per account too: a password guessed slowly from many addresses still hits a wall.
@limiter.limit(_account_rate, key_func=_account_key, methods=["POST"], scope="merchant-account")
def login() -> Response:
    if request.method == "GET" and g.merchant_user is not None:
        return redirect(url_for("merchant_console.home"), 303)
    error = False
    if request.method == "POST":
        try:
            user = accounts.authenticate(
                request.form.get("email", ""),
                request.form.get("password", ""),
                request.form.get("code") or None,
            )
        except accounts.LoginFailed:
            error = True
        else:
            return _signed_in(user)
    return make_response(render_template("merchant/login.html", error=error), 401 if error else 200)


def _signed_in(user: MerchantUser) -> Response:
    accounts.end_session(request.cookies.get(_cookie_name()))  # never reuse a session
    response = redirect(url_for("merchant_console.home"), 303)
    _set_session_cookie(response, accounts.start_session(user))
    return response


@bp.post("/logout")
def logout() -> Response:
    accounts.sign_out(g.merchant_user, g.merchant_session)
    response = redirect(url_for("merchant_console.login"), 303)
    response.delete_cookie(_cookie_name(), path="/")
    return response


@bp.post("/language")
def language() -> Response:
    target = request.form.get("next", "")
    if not target.startswith("/merchant") or "//" in target or "\\" in target:
        target = url_for("merchant_console.home")  # never an open redirect
    response = redirect(target, 303)
    if request.form.get("lang") in LOCALES:
        response.set_cookie(LOCALE_COOKIE, request.form["lang"], path="/merchant",
                            httponly=True, samesite="Lax",
                            secure=_cookie_name() == SECURE_COOKIE)  # fmt: skip
    return response


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@limiter.limit(_rate, methods=["POST"])
def invitation(token: str) -> Response:
    """Accept an invitation: choose a password and (owners always) set up TOTP."""
    user = accounts.user_from_token(token, "invite")
    if user is None:
        return make_response(render_template("merchant/link_invalid.html"), 404)
    error = None
    if request.method == "POST":
        try:
            accounts.accept_invitation(
                user,
                request.form.get("password", ""),
                request.form.get("confirm", ""),
                request.form.get("totp_token", "") if request.form.get("use_totp") else "",
                request.form.get("code", ""),
            )
        except accounts.AccountError as exc:
            error = exc.code
        else:
            return _signed_in(user)
    secret = new_totp_secret()
    return make_response(
        render_template(
            "merchant/invitation.html",
            user=user,
            error=error,
            secret=secret,
            totp_token=accounts.totp_setup_token(user, secret),
            totp_uri=totp_uri(secret, user.email, user.merchant.display_name),
        ),
        422 if error else 200,
    )


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(_rate, methods=["POST"])
@limiter.limit(_account_rate, key_func=_account_key, methods=["POST"], scope="merchant-reset")
def reset_request() -> Response:
    """Ask for a reset link; the answer is the same whether the address is known or not."""
    sent = False
    if request.method == "POST":
        accounts.request_reset(request.form.get("email", ""), _locale())
        sent = True
    return make_response(render_template("merchant/reset_request.html", sent=sent))


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_rate, methods=["POST"])
def reset(token: str) -> Response:
    user = accounts.user_from_token(token, "reset")
    if user is None:
        return make_response(render_template("merchant/link_invalid.html"), 404)
    error = None
    if request.method == "POST":
        try:
            accounts.reset_password(
                user,
                request.form.get("password", ""),
                request.form.get("confirm", ""),
                request.form.get("code", ""),
            )
        except accounts.AccountError as exc:
            error = exc.code
        else:
            return redirect(url_for("merchant_console.login", reset="1"), 303)
    return make_response(
        render_template("merchant/reset.html", user=user, error=error), 422 if error else 200
    )


# --- signed in --------------------------------------------------------------------------


@bp.get("/")
def home() -> Response:
    return make_response(render_template("merchant/home.html"))


@bp.get("/users")
@owner_only
def users() -> Response:
    return _users_page()


def _users_page(error: str | None = None, status: int = 200) -> Response:
    return make_response(
        render_template(
            "merchant/users.html",
            users=accounts.users_of(g.merchant_user),
            error=error,
            done=request.args.get("done", ""),
        ),
        status,
    )


def _limit_field() -> int | None:
    text = request.form.get("refund_limit", "").strip()
    if not text.strip("0.,' "):
        return 0  # empty, "0", "0,00": no refunds
    return parse_amount(text, g.merchant_user.merchant.currency, _locale())


@bp.post("/users")
@owner_only
def invite() -> Response:
    limit = _limit_field()
    if limit is None:
        return _users_page("invalid_refund_limit", 422)
    try:
        accounts.invite_user(
            g.merchant_user.merchant,
            request.form.get("email", ""),
            request.form.get("role", ""),
            refund_limit=limit,
            invited_by=g.merchant_user,
            locale=_locale(),
        )
    except accounts.AccountError as exc:
        return _users_page(exc.code, 422)
    return redirect(url_for("merchant_console.users", done="invited"), 303)


@bp.post("/users/<user_id>")
@owner_only
def update_user(user_id: str) -> Response:
    other = accounts.colleague(g.merchant_user, user_id)
    if other is None:
        abort(404)
    limit = _limit_field() if "refund_limit" in request.form else None
    if "refund_limit" in request.form and limit is None:
        return _users_page("invalid_refund_limit", 422)
    disabled = {"disable": True, "enable": False}.get(request.form.get("state", ""))
    try:
        accounts.update_user(g.merchant_user, other, refund_limit=limit, disabled=disabled)
    except accounts.AccountError as exc:
        return _users_page(exc.code, 422)
    return redirect(url_for("merchant_console.users", done="updated"), 303)


@bp.get("/audit")
@owner_only
def audit() -> Response:
    return make_response(
        render_template("merchant/audit.html", entries=accounts.audit_entries(g.merchant_user))
    )


# --- payment requests by hand -----------------------------------------------------------


@bp.get("/requests/new")
def new_request() -> Response:
    kind = request.args.get("kind", "statement")
    if kind not in forms.KINDS:
        kind = "statement"
    return _request_form(kind)


def _request_form(kind: str, error: ApiError | forms.FormError | None = None) -> Response:
    return make_response(
        render_template(
            "merchant/new_request.html",
            kind=kind,
            kinds=forms.KINDS,
            form=request.form,
            error_code=getattr(error, "code", None),
            error_field=getattr(error, "field", None),
            rows=max(5, len(request.form.getlist("line_description"))),
        ),
        422 if error else 200,
    )


@bp.post("/requests")
def create_request() -> Response:
    kind = request.form.get("kind", "")
    if kind not in forms.KINDS:
        abort(404)
    merchant = g.merchant_user.merchant
    try:
        body = forms.request_body(
            request.form, kind, merchant.currency, _locale(), merchant.country
        )
        pr = requests.create_by_hand(g.merchant_user, body)
    except (forms.FormError, ApiError) as exc:
        db.session.rollback()
        return _request_form(kind, exc)
    return redirect(url_for("merchant_console.request_detail", request_id=pr.id), 303)


def _own_request(request_id: str) -> PaymentRequest:
    try:
        return requests.request_of(g.merchant_user, request_id)
    except NotFound:
        abort(404)


@bp.get("/requests/<request_id>")
def request_detail(request_id: str) -> Response:
    pr = _own_request(request_id)
    return _detail_page(pr)


def _detail_page(pr: PaymentRequest, error: ApiError | None = None) -> Response:
    return make_response(
        render_template(
            "merchant/request.html",
            pr=pr,
            url=link_url(pr.id),
            qr_url=qr_code_url(pr.id),
            account_url=(
                account_url(pr.merchant_id, pr.customer_reference)
                if pr.customer_reference
                else None
            ),
            deliveries=deliveries_for(pr.id),
            timeline=activity.timeline(pr),
            payments=activity.payments_of(pr),
            error=error,
            sent=request.args.get("sent", ""),
            done=request.args.get("done", ""),
        ),
        error.status if error else 200,
    )


@bp.get("/requests/<request_id>/card.pdf")
def request_card(request_id: str) -> Response:
    """A reusable top-up link's printable QR card, in the console's language."""
    size = request.args.get("size", "a6")
    if size not in CARD_SIZES:
        abort(404)
    pr = _own_request(request_id)
    try:
        body = printable_card(pr.merchant, pr.id, size, _locale())
    except ApiError:
        abort(409)  # the request is the merchant's, but not a reusable link (or it is void)
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="card-{size}.pdf"'
    return response


@bp.post("/requests/<request_id>/send")
def send_request(request_id: str) -> Response:
    pr = _own_request(request_id)
    channel = request.form.get("channel", "")
    try:
        requests.send_by_hand(g.merchant_user, pr, channel, request.form.get("to", "").strip())
    except ApiError as exc:
        db.session.rollback()
        return _detail_page(_own_request(request_id), exc)
    return redirect(url_for("merchant_console.request_detail", request_id=pr.id, sent=channel), 303)


@bp.get("/requests/<request_id>/preview")
def preview(request_id: str) -> Response:
    """The customer's page for this request, in the customer's language (nothing counted,
    nothing can be paid from here: the forms are shown, not wired)."""
    pr = _own_request(request_id)
    banner = render_template("merchant/_preview_banner.html", pr=pr)  # in the user's language
    g.locale = pr.customer_locale or pr.merchant.default_locale or "en"
    refresh()
    bounds = payable_range(pr)
    page = render_template(
            "customer/request.html",
            pr=pr, merchant=pr.merchant, token=link_token(pr.id), today=date.today(),
            locales=SUPPORTED_LOCALES, paid_payments=[], processing=None, bounds=bounds,
            full_bounds=payable_range(pr, full_order=True) if pr.allow_full_payment else None,
            error=None, error_field=None, typed=None, limits={}, needs_email=not pr.customer_email,
    )  # fmt: skip
    # Shown, not wired: the pay form comes back here instead of starting a payment.
    pay = f'method="post" action="{url_for("customer.pay", token=link_token(pr.id))}"'
    here = f'method="get" action="{url_for("merchant_console.preview", request_id=pr.id)}"'
    return make_response(page.replace(pay, here).replace("<main", banner + "<main", 1))


# --- find and act -----------------------------------------------------------------------


def _filters() -> activity.Filters:
    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(request.args.get(name, ""))
        except ValueError:
            return None

    def money(name: str) -> int | None:
        text = request.args.get(name, "").strip()
        return parse_amount(text, g.merchant_user.merchant.currency, _locale()) if text else None

    return activity.Filters(
        status=request.args.get("status", "")[:20],
        text=request.args.get("q", "")[:200],
        date_from=day("from"),
        date_to=day("to"),
        amount_min=money("min"),
        amount_max=money("max"),
    )


@bp.get("/requests")
def request_list() -> Response:
    filters = _filters()
    return make_response(
        render_template(
            "merchant/requests.html",
            rows=activity.find_requests(g.merchant_user, filters),
            statuses=[s.value for s in RequestStatus],
        )
    )


@bp.get("/payments")
def payment_list() -> Response:
    filters = _filters()
    return make_response(
        render_template(
            "merchant/payments.html",
            rows=activity.find_payments(g.merchant_user, filters),
            statuses=[s.value for s in PaymentStatus],
        )
    )


@bp.post("/requests/<request_id>/void")
def void(request_id: str) -> Response:
    pr = _own_request(request_id)
    try:
        activity.void_one(g.merchant_user, pr.id, request.form.get("reason", "")[:500])
    except ApiError as exc:
        db.session.rollback()
        return _detail_page(_own_request(request_id), exc)
    return redirect(url_for("merchant_console.request_detail", request_id=pr.id, done="void"), 303)


@bp.post("/customers/void")
def void_customer() -> Response:
    try:
        ids = activity.void_customer(
            g.merchant_user,
            request.form.get("customer_reference", "")[:100],
            request.form.get("reason", "")[:500],
        )
    except ApiError:
        db.session.rollback()
        return redirect(url_for("merchant_console.request_list", voided="none"), 303)
    return redirect(url_for("merchant_console.request_list", voided=len(ids)), 303)


@bp.post("/payments/<payment_id>/refunds")
def refund(payment_id: str) -> Response:
    try:
        payment = activity.payment_of(g.merchant_user, payment_id)
    except NotFound:
        abort(404)
    request_id = payment.request_id
    text = request.form.get("amount", "").strip()
    amount = parse_amount(text, payment.currency, _locale()) if text else None
    try:
        if text and amount is None:
            raise Invalid("invalid_amount", "Type the amount as a number.", "amount")
        activity.refund(g.merchant_user, payment_id, amount, request.form.get("reason", "")[:500])
    except ApiError as exc:
        db.session.rollback()
        return _detail_page(_own_request(request_id), exc)
    return redirect(
        url_for("merchant_console.request_detail", request_id=request_id, done="refund"), 303
    )


# --- reconciliation ---------------------------------------------------------------------


@bp.get("/reconciliation")
def reconciliation() -> Response:
    """The form, or with ``since`` and ``until`` the CSV (the API's records and totals)."""
    since, until = request.args.get("since", ""), request.args.get("until", "")
    if not since and not until:
        return make_response(render_template("merchant/reconciliation.html", error=False))
    try:
        first, last = date.fromisoformat(since), date.fromisoformat(until)
        if first > last or (last - first).days >= reconcile.MAX_DAYS:
            raise ValueError(since)
    except ValueError:
        return make_response(render_template("merchant/reconciliation.html", error=True), 422)
    merchant = g.merchant_user.merchant
    accounts.audit(g.merchant_user, "reconciliation.exported", merchant.id,
                   since=first.isoformat(), until=last.isoformat())  # fmt: skip
    response = make_response(reconcile.csv_text(merchant, first, last))
    response.mimetype = "text/csv"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="reconciliation-{first}-{last}.csv"'
    )
    return response


# --- settings ---------------------------------------------------------------------------


def _settings_page(
    error: ApiError | None = None,
    secret: str | None = None,
    account: Any = None,
    done: str | None = None,
    keep_form: bool = True,
) -> Response:
    """``account``: the provider's status of the shop's account, when the caller has it."""
    user = g.merchant_user
    return make_response(
        render_template(
            "merchant/settings.html",
            merchant=user.merchant,
            account=account or connect.status_of(user),
            keys=settings.keys_of(user),
            endpoints=settings.endpoints_of(user),
            deliveries=settings.deliveries_of(user),
            error=error,
            secret=secret,
            form=request.form if error and keep_form else None,
            done=done or request.args.get("done", ""),
            max_ceiling=to_minor(current_app.config["PORTAL_MAX_CEILING"], user.merchant.currency),
        ),
        error.status if error else 200,
    )


@bp.get("/settings")
@owner_only
def settings_page() -> Response:
    return _settings_page(done="connect_expired")


@bp.post("/settings")
@owner_only
def save_settings() -> Response:
    try:
        merchant = g.merchant_user.merchant
        changes = settings.form_changes(request.form, merchant.currency, str(get_locale()))
        settings.change_settings(g.merchant_user, changes)
    except ApiError as exc:
        db.session.rollback()
        return _settings_page(exc)
    return redirect(url_for("merchant_console.settings_page", done="saved"), 303)


@bp.post("/keys")
@owner_only
def create_key() -> Response:
    """The new key's secret is on this answer only (never in a URL, never stored)."""
    secret = settings.new_key(g.merchant_user, request.form.get("label", "").strip())
    return _settings_page(secret=secret)


@bp.post("/keys/<key_id>/revoke")
@owner_only
def revoke_key(key_id: str) -> Response:
    try:
        settings.revoke_key(g.merchant_user, key_id)
    except NotFound:
        abort(404)
    return redirect(url_for("merchant_console.settings_page", done="revoked"), 303)


@bp.post("/settings/logo")
@owner_only
def upload_logo() -> Response:
    upload = request.files.get("logo")
    data = upload.read(logos.MAX_BYTES + 1) if upload else b""
    if upload:
        upload.close()  # a large upload is spooled to a temporary file
    try:
        logos.set_logo(g.merchant_user, data)
    except ApiError as exc:
        db.session.rollback()
        return _settings_page(exc)
    return redirect(url_for("merchant_console.settings_page", done="saved"), 303)


@bp.get("/logos/<digest>.png")
def logo_image(digest: str) -> Response:
    """Public: customers' pages and e-mails show it; the name is the content's hash."""
    found = logos.logo(digest)
    if found is None:
        abort(404)
    response = make_response(found.data)
    response.mimetype = "image/png"
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/endpoints")
@owner_only
def add_endpoint() -> Response:
    """The new endpoint's signing secret is on this answer only."""
    try:
        endpoint = settings.add_endpoint(g.merchant_user, request.form.get("url", "")[:2000])
    except ApiError as exc:
        db.session.rollback()
        return _settings_page(exc)
    return _settings_page(secret=endpoint.secret)


@bp.post("/endpoints/<endpoint_id>")
@owner_only
def change_endpoint(endpoint_id: str) -> Response:
    try:
        endpoint = settings.endpoint_of(g.merchant_user, endpoint_id)
    except NotFound:
        abort(404)
    secret = settings.change_endpoint(g.merchant_user, endpoint, request.form.get("do", ""))
    if secret:
        return _settings_page(secret=secret)
    return redirect(url_for("merchant_console.settings_page", done="saved"), 303)


@bp.post("/events/<event_id>/replay")
@owner_only
def replay_event(event_id: str) -> Response:
    try:
        settings.replay(g.merchant_user, event_id)
    except NotFound:
        abort(404)
    return redirect(url_for("merchant_console.settings_page", done="replayed"), 303)


# --- the shop's own account at the payment provider (Connect) ------------------------


@bp.post("/connect")
@owner_only
def connect_account() -> Response:
    """To the provider's onboarding; it sends the owner back to the return or refresh page."""
    try:
        url = connect.start_onboarding(
            g.merchant_user,
            url_for("merchant_console.connect_return", _external=True),
            url_for("merchant_console.connect_refresh", _external=True),
        )
    except ApiError as exc:
        # no rollback: an account the provider created is kept, and audited
        return _settings_page(exc, keep_form=False)
    return redirect(url, 303)


@bp.get("/connect/return")
@owner_only
def connect_return() -> Response:
    account = connect.finish_onboarding(g.merchant_user)
    return _settings_page(account=account, done="connect_back")


@bp.get("/connect/refresh")
@owner_only
def connect_refresh() -> Response:
    """The provider's link expired (or was used): the page says so; the button makes a new one."""
    return _settings_page(done="connect_expired")
