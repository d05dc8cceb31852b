"""QR codes of customer links, and ``POST /api/v1/payment-requests/{id}/send``."""

from __future__ import annotations

import io

import segno
from flask import Blueprint, Response, abort, g

from portal.api.openapi import (
    EXTRA_PATHS,
    IDEMPOTENCY,
    json_content,
    operation,
    path_param,
    ref,
)
from portal.api.views import bp as api_bp
from portal.api.views import idempotent, json_body
from portal.delivery.services import delivery_json, send_link
from portal.extensions import db
from portal.links import link_url, request_id_from_token
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import get_for_merchant, is_expired

bp = Blueprint("qr", __name__, url_prefix="/p")


def _qr(token: str) -> segno.QRCode:
    """The QR code of a live link; the same 404 as the page for anything else."""
    request_id = request_id_from_token(token)
    pr = db.session.get(PaymentRequest, request_id) if request_id else None
    if pr is None or is_expired(pr):
        abort(404)
    return segno.make(link_url(pr.id), error="m")


def _image(body: bytes, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-store"
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


@api_bp.post("/payment-requests/<request_id>/send")
def send_payment_request(request_id: str) -> Response:
    body = json_body()

    def produce() -> tuple[int, dict]:
        pr = get_for_merchant(g.merchant, request_id, lock=True)
        delivery = send_link(pr, body.get("channel"), body.get("to"))
        return 202, delivery_json(delivery)

    return idempotent(produce, body)


EXTRA_PATHS["/payment-requests/{request_id}/send"] = {
    "post": operation(
        "sendPaymentRequest",
        "Send the link to the customer by email or SMS (queued; see `deliveries`).",
        {"202": json_content(ref("LinkDelivery"), "Queued.")},
        body={
            "type": "object",
            "required": ["channel"],
            "properties": {
                "channel": {"type": "string", "enum": ["email", "sms"]},
                "to": {"type": "string", "description": "Overrides the customer's email or phone."},
            },
        },
        params=[path_param("request_id", "A payment request id (pr_…)."), IDEMPOTENCY],
    )
}
