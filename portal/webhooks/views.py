"""``POST /webhooks/<provider>``: a payment provider's events (Stripe's at /webhooks/stripe)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from portal.errors import ApiError
from portal.extensions import csrf, limiter
from portal.webhooks.services import receive

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)
# Per client address: a provider's bursts fit, a flood of forged bodies does not.
limiter.shared_limit(lambda: current_app.config["PORTAL_WEBHOOK_RATE_LIMIT"], scope="webhooks")(bp)


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> tuple[Response, int]:
    return jsonify(exc.to_dict()), exc.status


@bp.post("/<provider>")
def provider_webhook(provider: str) -> tuple[Response, int]:
    status, body = receive(provider, request.get_data(), dict(request.headers))
    return jsonify(body), status
