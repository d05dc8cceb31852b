"""The customer's account page under ``/a/<token>``: every open request of one customer
with one merchant, paid together in one payment (docs/customer-portal.md).

The browser sends only what was ticked (request and line ids) and the top-up amount it
typed; :mod:`portal.payments.groups` decides every amount from the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    url_for,
)
from flask import request as http
from flask_babel import refresh
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response

from portal.customer.forms import ascii_digits, normalise_email, parse_amount
from portal.customer.views import LOCALE_COOKIE
from portal.documents import group_receipt_pdf, pdf_name
from portal.extensions import csrf, db, limiter
from portal.links import account_from_token, check_form_token, form_token, link_url
from portal.merchants.models import Merchant
from portal.money import format_money
from portal.payments.groups import (
    Selection,
    account,
    group_checkout_page,
    paid_lines,
    refresh_group_for_customer,
    submit_group,
    tickable_lines,
    topup_bounds,
    topup_open,
    whole_amount,
)
from portal.payments.groups import start_group as open_group
from portal.payments.models import PaymentGroup
from portal.payments.services import CheckoutPage, PaymentRefused, minimum_for, test_mode
from portal.states import OPEN_ATTEMPT, PaymentStatus
from portal.web import SUPPORTED_LOCALES

log = logging.getLogger(__name__)
bp = Blueprint("account", __name__, url_prefix="/a")
csrf.exempt(bp)  # the forms carry a token bound to the account link instead
limiter.shared_limit(lambda: current_app.config["PORTAL_LINK_RATE_LIMIT"], scope="links")(bp)
pay_limit = limiter.limit(
    lambda: current_app.config["PORTAL_PAY_RATE_LIMIT"],
    key_func=lambda: f"account-pay:{(http.view_args or {}).get('token', '')}",
    methods=["POST"],
    scope="pay",
    override_defaults=False,
)


@dataclass
class Owner:
    """Whose page this is: the merchant and the customer's reference (from the token)."""

    merchant: Merchant
    reference: str

    @property
    def form_key(self) -> str:
        return f"account:{self.merchant.id}:{self.reference}"


def _owner(token: str) -> Owner:
    found = account_from_token(token)
    merchant = db.session.get(Merchant, found[0]) if found else None
    if merchant is None or found is None:
        abort(404)
    return Owner(merchant, found[1])


@bp.url_value_preprocessor
def _locale_first(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """The page's language before any check can answer with an error page."""
    found = account_from_token(str((values or {}).get("token", "")))
    merchant = db.session.get(Merchant, found[0]) if found else None
    asked = http.args.get("lang")
    if asked in SUPPORTED_LOCALES:
        g.locale = g.remember_locale = asked
    elif http.cookies.get(LOCALE_COOKIE) in SUPPORTED_LOCALES:
        g.locale = http.cookies[LOCALE_COOKIE]
    else:
        default = merchant.default_locale if merchant else "en"
        g.locale = http.accept_languages.best_match(SUPPORTED_LOCALES) or default
    if merchant is not None and found is not None:
        g.account_form_key = Owner(merchant, found[1]).form_key
        g.merchant_country, g.time_zone = merchant.country, merchant.time_zone
        if merchant.embed_origins:
            g.frame_ancestors = " ".join(merchant.embed_origins)
    refresh()


@bp.before_request
def _check_form() -> None:
    """A form posted here carries this account link's form token, from our own pages."""
    key = g.get("account_form_key")
    if http.method != "POST" or key is None:
        return
    origin = http.headers.get("Origin")
    if origin and origin != http.host_url.rstrip("/"):
        abort(400, description="The form did not come from this site.")
    problem = check_form_token(key, http.form.get("csrf_token"))
    if problem:
        raise CSRFError(f"The form's token is {problem}.")


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    if getattr(g, "remember_locale", None):
        response.set_cookie(
            LOCALE_COOKIE, g.remember_locale, max_age=365 * 86400, path="/",
            secure=http.is_secure, httponly=True, samesite="Lax",
        )  # fmt: skip
    return response


def _render(template: str, owner: Owner, status: int = 200, **context: Any) -> Response:
    token = (http.view_args or {})["token"]
    body = render_template(
        template,
        merchant=owner.merchant,
        reference=owner.reference,
        token=token,
        home_url=url_for("account.show", token=token),
        back_url=url_for("account.show", token=token),
        today=date.today(),
        locales=SUPPORTED_LOCALES,
        test_mode=test_mode(),
        csrf_token=lambda: form_token(owner.form_key),
        link_url=link_url,
        **context,
    )
    return make_response(body, status)


def _limits(owner: Owner, refused: PaymentRefused | None) -> dict[str, str]:
    if refused is None or refused.bounds is None:
        return {}
    low, high, minimum = refused.bounds
    locale, currency = str(g.locale), owner.merchant.currency
    return {
        "low": format_money(low, currency, locale),
        "high": format_money(high, currency, locale),
        "minimum": format_money(minimum, currency, locale),
    }


def _page(owner: Owner, error: str | None = None, status: int = 200, **context: Any) -> Response:
    found = account(owner.merchant, owner.reference)
    return _render(
        "customer/account.html", owner, status, account=found, error=error,
        whole_amount=whole_amount, tickable_lines=tickable_lines, topup_open=topup_open,
        topup_bounds=topup_bounds,
        minimum=minimum_for(owner.merchant, owner.merchant.currency),
        needs_email=not any(pr.customer_email for pr in found.items), **context,
    )  # fmt: skip


@bp.get("/<token>")
def show(token: str) -> Response:
    return _page(_owner(token))


@dataclass
class AccountForm:
    selection: Selection | None = None
    email: str | None = None
    error: str | None = None
    typed: str = ""


def _ids(values: list[str]) -> list[int] | None:
    if not all(ascii_digits(v) and len(v) < 12 for v in values):
        return None
    return [int(v) for v in values]


def parse_account_form(form: Any, currency: str, locale: str) -> AccountForm:
    """Ids only, and the top-up amount typed (the strict locale-aware parser)."""
    parsed = AccountForm(typed=(form.get("topup_amount") or "").strip()[:40])
    lines = _ids(form.getlist("line"))
    requests = [v[:40] for v in form.getlist("request")]
    if lines is None or len(requests) + len(lines) > 500:
        return AccountForm(error="not_payable")
    topup = (form.get("topup") or "").strip()[:40] or None
    amount = None
    if topup and parsed.typed:
        amount = parse_amount(parsed.typed, currency, locale)
        if amount is None:
            return AccountForm(error="amount_invalid", typed=parsed.typed)
    email = (form.get("email") or "").strip()[:254]
    if email:
        try:
            parsed.email = normalise_email(email)
        except ValueError:
            return AccountForm(error="email_invalid", typed=parsed.typed)
    parsed.selection = Selection(frozenset(requests), frozenset(lines), topup, amount)
    return parsed


@bp.post("/<token>/pay")
@pay_limit
def pay(token: str) -> Response:
    owner = _owner(token)
    form = parse_account_form(http.form, owner.merchant.currency, str(g.locale))
    if form.selection is None:
        return _page(owner, form.error, 422, typed=form.typed)
    try:
        group = open_group(
            owner.merchant, owner.reference, form.selection, locale=str(g.locale),
            receipt_email=form.email,
        )  # fmt: skip
    except PaymentRefused as refused:
        if refused.code != "changed":  # "changed": what the provider said is kept (committed)
            db.session.rollback()
        status = 503 if refused.code == "try_again" else 422
        return _page(owner, refused.code, status, typed=form.typed, limits=_limits(owner, refused))
    return redirect(url_for("account.checkout", token=token, group_id=group.id), 303)


def _group_of(owner: Owner, group_id: str) -> PaymentGroup:
    group = db.session.get(PaymentGroup, group_id)
    if group is None or group.merchant_id != owner.merchant.id:
        abort(404)
    if group.customer_reference != owner.reference:
        abort(404)
    return group


@bp.route("/<token>/checkout/<group_id>", methods=["GET", "POST"])
@bp.route("/<token>/checkout/<group_id>/<step>", methods=["GET", "POST"])
@pay_limit
def checkout(token: str, group_id: str, step: str | None = None) -> Response:
    """The provider's checkout pages for the one payment of the ticked items."""
    owner = _owner(token)
    group = _group_of(owner, group_id)
    to_result = redirect(url_for("account.result", token=token, group_id=group_id), 303)
    if group.status != PaymentStatus.PENDING:
        return to_result
    try:
        if http.method == "POST":
            submitted = submit_group(group_id, step, http.form)
            if submitted.page is not None:
                return _checkout_page(owner, group, submitted.page)
            if submitted.next_step:
                return redirect(url_for("account.checkout", token=token, group_id=group_id,
                                        step=submitted.next_step), 303)  # fmt: skip
            return to_result
        page = group_checkout_page(group, step)
    except PaymentRefused:
        db.session.rollback()
        return _page(owner, "try_again", 503)
    return _checkout_page(owner, group, page)


def _checkout_page(owner: Owner, group: PaymentGroup, page: CheckoutPage) -> Response:
    for source, value in page.csp.items():
        setattr(g, f"csp_{source}" + ("_src" if source != "form_action" else ""), f" {value}")
    return _render(page.template, owner, page.status, payment=group, group=group, **page.context)


@bp.get("/<token>/return/<group_id>")
def result(token: str, group_id: str) -> Response:
    owner = _owner(token)
    group = _group_of(owner, group_id)
    if group.status in OPEN_ATTEMPT and group.provider_payment_id:
        refresh_group_for_customer(group_id)  # the truth comes from the provider
        group = _group_of(owner, group_id)
    return _render(
        "customer/account_result.html", owner, group=group, members=group.members,
        paid_lines=paid_lines(group.members),
    )  # fmt: skip


@bp.get("/<token>/receipt/<group_id>.pdf")
def receipt_document(token: str, group_id: str) -> Response:
    owner = _owner(token)
    group = _group_of(owner, group_id)
    if group.status != PaymentStatus.SUCCEEDED:
        abort(404)
    response = Response(
        group_receipt_pdf(group, paid_lines(group.members), str(g.locale)),
        mimetype="application/pdf",
    )
    name = pdf_name("receipt", group.id)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.get("/<token>/receipt/<group_id>")
def receipt(token: str, group_id: str) -> Response:
    owner = _owner(token)
    group = _group_of(owner, group_id)
    if group.status != PaymentStatus.SUCCEEDED:
        abort(404)
    return _render(
        "customer/account_receipt.html", owner, group=group, members=group.members,
        paid_lines=paid_lines(group.members),
    )  # fmt: skip
