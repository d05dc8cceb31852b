"""The customer's pages under ``/p/<token>``."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, make_response, render_template

from portal.extensions import db
from portal.links import request_id_from_token
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import is_expired

bp = Blueprint("customer", __name__, url_prefix="/p")


def load_request(token: str) -> PaymentRequest:
    """The request behind a link; the same 404 for tampered, unknown and expired tokens."""
    request_id = request_id_from_token(token)
    pr = db.session.get(PaymentRequest, request_id) if request_id else None
    if pr is None or is_expired(pr):
        abort(404)
    if pr.merchant.embed_origins:
        g.frame_ancestors = " ".join(pr.merchant.embed_origins)
    return pr


@bp.after_request
def _token_page_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/<token>")
def show(token: str) -> Response:
    pr = load_request(token)
    g.locale = pr.customer_locale or None
    return make_response(render_template("customer/minimal.html", pr=pr, merchant=pr.merchant))
