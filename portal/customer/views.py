"""The customer's pages under ``/p/<token>``: read, pay, 3-D Secure, result, receipt, QR code;
and ``/s/<code>``, the short links of SMS, which lead there.

Views parse the form, call one service and render. Amounts always come from
the database (:func:`portal.payments.services.start_payment` decides them);
the browser only picks within the rules.
"""

from __future__ import annotations

import io
import logging
from datetime import date
from typing import TYPE_CHECKING, Any

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
from flask_babel import refresh
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError
from sqlalchemy import Row, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from portal.customer import forms, lines, opens
from portal.delivery.shortlinks import request_id_for
from portal.documents import pdf_name, receipt_pdf, statement_pdf
from portal.extensions import csrf, db, limiter
from portal.links import (
    check_form_token,
    form_token,
    link_token,
    link_url,
    request_id_from_token,
)
from portal.money import format_money
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.renewal import request_renewal
from portal.payments.models import Payment
from portal.payments.reusable import new_nonce, start_reusable_payment
from portal.payments.services import (
    CheckoutPage,
    PaymentRefused,
    checkout_page,
    minimum_charge,
    payable_range,
    prepare_payment,
    refresh_for_customer,
    start_payment,
    submit_checkout,
    test_mode,
)
from portal.states import OPEN_ATTEMPT, SETTLED, PaymentStatus, RequestStatus
from portal.web import SUPPORTED_LOCALES, bound_helpers

if TYPE_CHECKING:
    import segno

log = logging.getLogger(__name__)
bp = Blueprint("customer", __name__, url_prefix="/p")
# The session's CSRF token needs our cookie, which a browser never sends inside a
# merchant's frame: these forms carry a token bound to their link (docs/embedding.md).
csrf.exempt(bp)
# Per client address, one budget for every link page and QR code (shared through Redis
# when PORTAL_REDIS_URL is set).
limiter.shared_limit(lambda: current_app.config["PORTAL_LINK_RATE_LIMIT"], scope="links")(bp)


def _pay_attempt_key() -> str:
    """Pay attempts are counted per link, whoever (and from wherever) submits them."""
    return f"pay:{(request.view_args or {}).get('token', '')}"


# Card testing through one link is stopped even when it comes from many addresses.
pay_limit = limiter.limit(
    lambda: current_app.config["PORTAL_PAY_RATE_LIMIT"],
    key_func=_pay_attempt_key,
    methods=["POST"],
    scope="pay",
    override_defaults=False,
)


def _renewal_key() -> str:
    return f"renew:{(request.view_args or {}).get('token', '')}"


# "Ask for a new link": per link, whoever asks, and per client address, over every link.
renewal_limits = [
    limiter.limit(
        lambda: current_app.config["PORTAL_RENEWAL_RATE_LIMIT"],
        key_func=key,
        scope=scope,
        override_defaults=False,
    )
    for key, scope in ((_renewal_key, "renew"), (get_remote_address, "renew-address"))
]


# /s/<code>: the short link of an SMS, under the same budget per address as /p/.
short_bp = Blueprint("short_link", __name__, url_prefix="/s")
limiter.shared_limit(lambda: current_app.config["PORTAL_LINK_RATE_LIMIT"], scope="links")(short_bp)


bp.record_once(lambda state: lines.init_app(state.app))
bp.record_once(lambda state: opens.init_app(state.app))

LOCALE_COOKIE = "portal_locale"
CLOSED = (RequestStatus.VOID, RequestStatus.EXPIRED)


def load_request(token: str) -> PaymentRequest:
    """The request behind a link; one plain 404 for tampered and unknown tokens."""
    request_id = request_id_from_token(token)
    pr = g.get("link_request")
    if pr is None or pr.id != request_id:
        pr = db.session.get(PaymentRequest, request_id) if request_id else None
    if pr is None:
        abort(404)
    _allow_framing(pr)
    choose_locale(pr)
    return pr


@bp.url_value_preprocessor
def _locale_before_any_check(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Decide the page's language before the CSRF check, the rate limits or anything else
    can answer with an error page: that page speaks the language the customer chose, not
    the browser's. (URL processors run before every ``before_request`` hook.)"""
    request_id = request_id_from_token(str((values or {}).get("token", "")))
    pr = db.session.get(PaymentRequest, request_id) if request_id else None
    if pr is not None:
        # Kept in g: the session's identity map holds its objects weakly, so without a
        # reference the hooks and the view below would each load the request again.
        g.link_request, g.link_request_id = pr, pr.id
        _allow_framing(pr)
        choose_locale(pr)
        return
    asked = request.args.get("lang") or request.cookies.get(LOCALE_COOKIE)
    if asked in SUPPORTED_LOCALES:
        g.locale = asked


def _allow_framing(pr: PaymentRequest) -> None:
    """``frame-ancestors`` for the merchant's listed origins (also on its error pages)."""
    if pr.merchant.embed_origins:
        g.frame_ancestors = " ".join(pr.merchant.embed_origins)


@bp.before_request
def _check_form() -> None:
    """A form posted to a link carries that link's form token, and comes from our own
    pages (an ``Origin`` of ours when the browser says one). Refused: a 400 page, in the
    customer's language, that the merchant's frame may show."""
    request_id = g.get("link_request_id")
    pr = g.get("link_request")
    if pr is not None:
        _allow_framing(pr)
    if request.method != "POST" or request_id is None:
        return  # an unknown link's POST gets the view's plain 404
    origin = request.headers.get("Origin")
    if origin and origin != request.host_url.rstrip("/"):
        abort(400, description="The form did not come from this site.")
    problem = check_form_token(request_id, request.form.get("csrf_token"))
    if problem:
        # Open more than a day, signed with a key since removed, or no token of this link:
        # nothing is done, and the localized "form has expired" page leads to a fresh copy.
        raise CSRFError(f"The form's token is {problem}.")


def choose_locale(pr: PaymentRequest) -> None:
    """The customer's explicit choice (switcher, remembered) wins; then the locale the
    merchant set for this customer; then the browser's; then the merchant's default."""
    asked = request.args.get("lang")
    if asked in SUPPORTED_LOCALES:
        g.locale = g.remember_locale = asked
    elif request.cookies.get(LOCALE_COOKIE) in SUPPORTED_LOCALES:
        g.locale = request.cookies[LOCALE_COOKIE]
    elif pr.customer_locale:
        g.locale = pr.customer_locale
    else:
        g.locale = request.accept_languages.best_match(SUPPORTED_LOCALES) or (
            pr.merchant.default_locale
        )
    # Dates read the merchant's country's way, times on the merchant's clock.
    g.merchant_country, g.time_zone = pr.merchant.country, pr.merchant.time_zone
    refresh()  # the locale is decided per request, never taken from an earlier one


def _payment_of(pr: PaymentRequest, payment_id: str) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.request_id != pr.id:
        abort(404)
    return payment


@bp.after_request
def _token_page_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    if g.get("count_open"):
        try:
            opens.record_open(g.pop("count_open"))
        except SQLAlchemyError:  # a counter must never cost the customer the page
            db.session.rollback()
            log.warning("could not count a link open", exc_info=True)
    if getattr(g, "remember_locale", None):
        # Where a merchant frames its links (over https), the choice is kept inside the
        # frame too: a partitioned cookie, for that site's frames only.
        framed = bool(g.get("frame_ancestors")) and request.is_secure
        response.set_cookie(
            LOCALE_COOKIE, g.remember_locale, max_age=365 * 86400, path="/p",
            secure=request.is_secure, httponly=True, samesite="None" if framed else "Lax",
            partitioned=framed,
        )  # fmt: skip
    return response


def _render(template: str, pr: PaymentRequest, status: int = 200, **context: Any) -> Response:
    token = (request.view_args or {})["token"]
    response = make_response(
        render_template(
            template,
            pr=pr,
            merchant=pr.merchant,
            token=token,
            today=date.today(),
            locales=SUPPORTED_LOCALES,
            test_mode=test_mode(),
            csrf_token=lambda: form_token(pr.id),  # the link's, not the session's
            # A payment made through a reusable link: the way back to that link.
            again=url_for("customer.show", token=link_token(pr.parent_request_id))
            if pr.parent_request_id
            else None,
            **bound_helpers(),
            **context,
        ),
        status,
    )
    return response


def _closed(pr: PaymentRequest) -> Response:
    """Void or expired: what to do now, with the merchant's contact (410 Gone)."""
    state = RequestStatus.EXPIRED if pr.is_expired() else pr.status
    return _render("customer/closed.html", pr, 410, state=state)


# What the page and its PDF show of a payment (Core rows with these attribute names), in
# a statement built once: building and keying a query costs more than running it.
_payments_table = Payment.__table__
_PAYMENTS = (
    select(
        *(_payments_table.c[name]
          for name in ("id", "status", "applied", "amount", "currency", "amount_refunded",
                       "receipt_number", "succeeded_at", "created_at"))
    )
    .where(_payments_table.c.request_id == bindparam("request_id"))
    .where(_payments_table.c.applied
           | (_payments_table.c.status == PaymentStatus.PROCESSING.value))
    .order_by(_payments_table.c.created_at)
)  # fmt: skip


def _payments(pr: PaymentRequest) -> tuple[list[Row[Any]], Row[Any] | None]:
    """(payments applied to the request, a payment being processed) in one query."""
    rows = db.session.execute(_PAYMENTS, {"request_id": pr.id}).all()
    applied = sorted((p for p in rows if p.applied), key=lambda p: p.succeeded_at or p.created_at)
    processing = next((p for p in rows if p.status == PaymentStatus.PROCESSING), None)
    return applied, processing


def _limits(pr: PaymentRequest, refused: PaymentRefused | None = None) -> dict[str, str]:
    """The amounts an error message states ("between €5.00 and €200.00")."""
    bounds = refused.bounds if refused and refused.bounds else None
    if bounds is None:
        payable = payable_range(pr)
        bounds = (*payable, minimum_charge(pr)) if payable else None
    if bounds is None:
        return {}
    low, high, minimum = bounds
    locale = str(g.locale)
    due = pr.amount_due or 0
    return {
        "low": format_money(low, pr.currency, locale),
        "high": format_money(high, pr.currency, locale),
        "minimum": format_money(minimum, pr.currency, locale),
        "most": format_money(max(due - minimum, 0), pr.currency, locale),
        "due": format_money(due, pr.currency, locale),
    }


@bp.get("/<token>")
def show(token: str) -> Response:
    pr = load_request(token)
    if request.method == "GET" and "lang" not in request.args:
        # Counted once the page is rendered: the commit then expires nothing we still need.
        g.count_open = pr.id
    if pr.status in CLOSED or pr.is_expired():
        return _closed(pr)
    return _request_page(pr)


def _request_page(
    pr: PaymentRequest,
    error: str | None = None,
    status: int = 200,
    *,
    form: forms.PayForm | None = None,
    refused: PaymentRefused | None = None,
) -> Response:
    paid, processing = _payments(pr)
    return _render(
        "customer/request.html",
        pr,
        status,
        paid_payments=paid,
        processing=processing,
        bounds=payable_range(pr),
        full_bounds=payable_range(pr, full_order=True) if pr.allow_full_payment else None,
        error=error,
        error_field=(form.error_field if form else None) or ("amount" if error else None),
        typed=form.typed if form else None,
        limits=_limits(pr, refused) if error else {},
        needs_email=not pr.customer_email,
        nonce=new_nonce() if pr.reusable else None,
    )


@bp.post("/<token>/renew")
@renewal_limits[0]
@renewal_limits[1]
def renew(token: str) -> Response:
    """ "Ask for a new link" on a closed link's page: passed on to the merchant at most once
    a day; the same confirmation whatever was done (it tells nothing about the request)."""
    pr = load_request(token)
    if pr.status not in CLOSED and not pr.is_expired():
        return redirect(url_for("customer.show", token=token), 303)
    request_renewal(pr.id)
    return _render("customer/renewal.html", pr)


@bp.post("/<token>/pay")
@pay_limit
def pay(token: str) -> Response:
    pr = load_request(token)
    if pr.status in CLOSED or pr.is_expired():
        return _closed(pr)
    form = forms.parse_pay_form(request.form, pr.currency, str(g.locale))
    if form.error:
        return _request_page(pr, form.error, 422, form=form)
    try:
        # One transaction: the request's row stays locked while the provider sets up its
        # side, so a second tab waits and then reuses this attempt.
        payment = _start(pr, form)
        payment_id, request_id = payment.id, payment.request_id
        if payment.status == PaymentStatus.PENDING:
            prepare_payment(payment)
    except PaymentRefused as refused:
        db.session.rollback()
        status = 503 if refused.code == "try_again" else 422
        return _request_page(pr, refused.code, status, form=form, refused=refused)
    if request_id != pr.id:  # a reusable link's payment: its checkout is its child's
        token = link_token(request_id)
    return redirect(url_for("customer.checkout", token=token, payment_id=payment_id), 303)


def _start(pr: PaymentRequest, form: forms.PayForm) -> Payment:
    if pr.reusable:
        return start_reusable_payment(
            pr, form.amount, request.form.get("nonce"), locale=g.locale,
            receipt_email=form.email,
        )  # fmt: skip
    return start_payment(
        pr, form.amount, locale=g.locale, receipt_email=form.email, full_order=form.full_order
    )


@bp.route("/<token>/checkout/<payment_id>", methods=["GET", "POST"])
@bp.route("/<token>/checkout/<payment_id>/<step>", methods=["GET", "POST"])
@pay_limit
def checkout(token: str, payment_id: str, step: str | None = None) -> Response:
    """The provider's checkout pages (its card form, its 3-D Secure step, its own fields);
    the provider says what each shows and does, this view only carries it."""
    pr = load_request(token)
    payment = _payment_of(pr, payment_id)
    to_result = redirect(url_for("customer.result", token=token, payment_id=payment_id), 303)
    if payment.status != PaymentStatus.PENDING:
        return to_result
    try:
        if request.method == "POST":
            submitted = submit_checkout(payment_id, step, request.form)
            if submitted.page is not None:
                return _checkout_page(pr, payment, submitted.page)
            if submitted.next_step:
                return redirect(url_for("customer.checkout", token=token, payment_id=payment_id,
                                        step=submitted.next_step), 303)  # fmt: skip
            return to_result
        page = checkout_page(payment, step)
    except PaymentRefused as refused:
        if refused.code == "try_again":
            db.session.rollback()
            return _request_page(pr, "try_again", 503)
        return to_result  # no longer open: what the provider said of it is kept
    return _checkout_page(pr, payment, page)


def _checkout_page(pr: PaymentRequest, payment: Payment, page: CheckoutPage) -> Response:
    for source, value in page.csp.items():  # what the provider's page loads, and no more
        setattr(g, f"csp_{source}" + ("_src" if source != "form_action" else ""), f" {value}")
    return _render(page.template, pr, page.status, payment=payment, **page.context)


@bp.get("/<token>/return/<payment_id>")
def result(token: str, payment_id: str) -> Response:
    """Where the provider sends the customer back: the truth comes from the provider."""
    pr = load_request(token)
    payment = _payment_of(pr, payment_id)
    if payment.status in OPEN_ATTEMPT:
        refresh_for_customer(payment)
        pr, payment = db.session.get_one(PaymentRequest, pr.id), _payment_of(pr, payment_id)
    return _render("customer/result.html", pr, payment=payment)


def _qr(token: str) -> segno.QRCode:
    """The QR code of a live link; the same 404 as the page for anything else (a closed
    link's code would only lead to a dead end)."""
    request_id = request_id_from_token(token)
    pr = db.session.get(PaymentRequest, request_id) if request_id else None
    if pr is None or pr.status in CLOSED or pr.is_expired():
        abort(404)
    import segno  # 1.2 MB held by a worker only once a QR code is asked for

    return segno.make(link_url(pr.id), error="m")


def _image(body: bytes, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/<token>/qr.svg")
def qr_svg(token: str) -> Response:
    out = io.BytesIO()
    _qr(token).save(out, kind="svg", scale=8, border=4, title="QR")
    return _image(out.getvalue(), "image/svg+xml")


@bp.get("/<token>/qr.png")
def qr_png(token: str) -> Response:
    out = io.BytesIO()
    _qr(token).save(out, kind="png", scale=8, border=4)
    return _image(out.getvalue(), "image/png")


def _pdf(body: bytes, filename: str) -> Response:
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/<token>/document.pdf")
def document_pdf(token: str) -> Response:
    """The statement (order, top-up) as a PDF, in the page's language."""
    pr = load_request(token)
    if pr.status in CLOSED or pr.is_expired():
        return _closed(pr)
    paid, _processing = _payments(pr)
    kind = {"statement": "statement", "order_deposit": "order"}.get(pr.kind, "top-up")
    return _pdf(statement_pdf(pr, str(g.locale), paid), pdf_name(kind, pr.reference))


@bp.get("/<token>/receipt/<payment_id>.pdf")
def receipt_document(token: str, payment_id: str) -> Response:
    pr = load_request(token)
    payment = _payment_of(pr, payment_id)
    if payment.status not in SETTLED:
        abort(404)
    name = pdf_name("receipt", payment.receipt_number or payment.id)
    return _pdf(receipt_pdf(payment, str(g.locale)), name)


@bp.get("/<token>/receipt/<payment_id>")
def receipt(token: str, payment_id: str) -> Response:
    pr = load_request(token)
    payment = _payment_of(pr, payment_id)
    if payment.status not in SETTLED:
        abort(404)
    return _render("customer/receipt.html", pr, payment=payment)


# --- /s/<code>: short links (portal/delivery/shortlinks.py) ----------------------------


@short_bp.url_value_preprocessor
def _short_link_locale(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """An unknown code's 404 page speaks the language asked, remembered or the browser's."""
    asked = request.args.get("lang") or request.cookies.get(LOCALE_COOKIE)
    if asked in SUPPORTED_LOCALES:
        g.locale = asked


@short_bp.after_request
def _short_link_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@short_bp.get("/<code>")
def short_link(code: str) -> Response:
    """To the request's page, where expiry and voiding are decided as for the long link;
    a forged, mistyped or unknown code gets the plain 404 page."""
    request_id = request_id_for(code)
    if request_id is None:
        abort(404)
    return redirect(url_for("customer.show", token=link_token(request_id)), 303)
