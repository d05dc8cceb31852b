"""The unsubscribe link of a reminder: ``/u/<token>``.

GET shows what the link does and a button (mail scanners that open links change
nothing); POST records the opt-out and confirms it, in the customer's language (the
link's ``lang``, then the browser's). The token is the credential: no session, no
CSRF token (a forged POST could only do what the link's holder may do anyway).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    make_response,
    render_template,
    request,
)

from portal.extensions import csrf, db, limiter
from portal.merchants.models import Merchant
from portal.reminders.optouts import Unsubscribe, opt_out, read_token
from portal.web import SUPPORTED_LOCALES

bp = Blueprint("reminders", __name__, url_prefix="/u")
csrf.exempt(bp)
limiter.shared_limit(lambda: current_app.config["PORTAL_LINK_RATE_LIMIT"], scope="links")(bp)


def _asked(token: str) -> tuple[Unsubscribe, Merchant]:
    asked = read_token(token)
    merchant = db.session.get(Merchant, asked.merchant_id) if asked else None
    if asked is None or merchant is None:
        abort(404)
    return asked, merchant


@bp.before_request
def _locale() -> None:
    lang = request.args.get("lang")
    if lang in SUPPORTED_LOCALES:
        g.locale = lang


def _page(merchant: Merchant, asked: Unsubscribe, done: bool) -> Response:
    response = make_response(
        render_template("reminders/unsubscribe.html", merchant=merchant,
                        channel=asked.channel, done=done)
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<token>")
def confirm(token: str) -> Response:
    asked, merchant = _asked(token)
    return _page(merchant, asked, done=False)


@bp.post("/<token>")
def unsubscribe(token: str) -> Response:
    asked, merchant = _asked(token)
    opt_out(asked)
    return _page(merchant, asked, done=True)
