"""``POST /webhooks/<provider>``: a payment provider's events (Stripe's at /webhooks/stripe)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from portal.errors import ApiError
from portal.extensions import csrf
from portal.webhooks.services import receive

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> tuple[Response, int]:
    return jsonify(exc.to_dict()), exc.status


@bp.post("/<provider>")
def provider_webhook(provider: str) -> tuple[Response, int]:
    status, body = receive(provider, request.get_data(), dict(request.headers))
    return jsonify(body), status
