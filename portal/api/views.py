"""The merchant REST API, ``/api/v1``: parse, call one service, serialize."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from portal.api.idempotency import fingerprint, run_idempotent
from portal.api.openapi import openapi_document
from portal.api.serializers import payment_request_json
from portal.errors import ApiError, Invalid
from portal.extensions import db, limiter
from portal.merchants.services import authenticate
from portal.payment_requests import services as requests_service
from portal.validation import ascii_digits

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _api_key_identity() -> str:
    """Rate-limit per presented key (hashed), before authentication runs."""
    header = request.headers.get("Authorization", "")
    return "api:" + hashlib.sha256(header.encode()).hexdigest()[:24]


limiter.limit(lambda: current_app.config["PORTAL_API_RATE_LIMIT"], key_func=_api_key_identity)(bp)

PUBLIC_ENDPOINTS = {"api.openapi"}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Any = None
) -> Response:
    error = ApiError(status, code, message, field, headers)
    response = jsonify(error.to_dict())
    response.status_code = status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    db.session.rollback()
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


@bp.before_request
def _authenticate() -> Response | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    key = authenticate(secret.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        return error_response(
            401,
            "unauthorized",
            "Send a valid API key as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": 'Bearer realm="portal"'},
        )
    g.api_key = key
    g.merchant = key.merchant
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 for anything else."""
    try:
        body = request.get_json(force=True, silent=True)
        # A lone surrogate escape ("\\ud800") parses, but is no text: nothing could store,
        # hash or answer it.
        json.dumps(body, ensure_ascii=False).encode()
    except RecursionError:  # nested deeper than the parser goes
        raise ApiError(400, "invalid_json", "The request body is nested too deeply.") from None
    except UnicodeEncodeError:
        raise ApiError(
            400, "invalid_json", "The request body has a \\u escape that is not a character."
        ) from None
    if body is None and request.get_data():
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return body


def idempotent(produce: Any, body: dict[str, Any]) -> Response:
    key = request.headers.get("Idempotency-Key")
    fp = fingerprint(request.method, request.path, body)
    (status, payload), replayed = run_idempotent(g.merchant.id, key, fp, produce)
    response = jsonify(payload)
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not ascii_digits(raw) or len(raw) > 9 or not low <= int(raw) <= high:
        raise Invalid("invalid_value", f"{name} must be an integer from {low} to {high}.", name)
    return int(raw)


@bp.post("/payment-requests")
def create_payment_request() -> Response:
    body = json_body()

    def produce() -> tuple[int, dict[str, Any]]:
        pr = requests_service.create_payment_request(g.merchant, body, g.api_key.id)
        # Nothing can have been sent yet unless asked: spare the deliveries query.
        return 201, payment_request_json(pr, None if body.get("send") else [])

    return idempotent(produce, body)


@bp.get("/payment-requests/<request_id>")
def get_payment_request(request_id: str) -> Response:
    return jsonify(payment_request_json(requests_service.get_for_merchant(g.merchant, request_id)))


@bp.get("/payment-requests")
def list_payment_requests() -> Response:
    limit = query_int("limit", 20, 1, 100)
    rows, has_more = requests_service.list_for_merchant(
        g.merchant,
        status=request.args.get("status") or None,
        reference=request.args.get("reference") or None,
        customer_reference=request.args.get("customer_reference") or None,
        limit=limit,
        starting_after=request.args.get("starting_after") or None,
    )
    return jsonify(
        object="list",
        data=[payment_request_json(pr) for pr in rows],
        has_more=has_more,
        next_starting_after=rows[-1].id if has_more else None,
    )


@bp.post("/payment-requests/<request_id>/void")
def void_payment_request(request_id: str) -> Response:
    body = json_body()

    def produce() -> tuple[int, dict[str, Any]]:
        pr = requests_service.void_request(g.merchant, request_id)
        return 200, payment_request_json(pr)

    return idempotent(produce, body)


@bp.post("/payment-requests/void")
def void_customer_payment_requests() -> Response:
    body = json_body()
    if body.get("customer_reference") is None:
        raise Invalid("missing_field", "customer_reference is required.", "customer_reference")

    def produce() -> tuple[int, dict[str, Any]]:
        ids = requests_service.void_customer_requests(g.merchant, body["customer_reference"])
        return 200, {"object": "void_result", "count": len(ids), "ids": ids}

    return idempotent(produce, body)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
