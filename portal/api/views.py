"""The merchant REST API, ``/api/v1``: every route, each declared once with its contract.

Views parse the body and query into the models of :mod:`portal.api.schemas`, call
one service and answer with a model; :mod:`portal.api.contract` makes the
OpenAPI document of the same declarations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel

from portal.api import schemas
from portal.api.contract import PDF, openapi_document, operation, parse
from portal.api.idempotency import fingerprint, run_idempotent
from portal.api.serializers import (
    callback_delivery_answer,
    event_answer,
    link_delivery_answer,
    payment_request_answer,
    refund_answer,
)
from portal.db_types import utcnow
from portal.delivery.services import send_link
from portal.errors import ApiError, Invalid
from portal.extensions import db, limiter
from portal.ledger import callbacks, endpoints
from portal.ledger import services as ledger
from portal.ledger.models import CallbackEndpoint
from portal.merchants.models import Merchant
from portal.merchants.services import authenticate, update_settings
from portal.payment_requests import services as requests_service
from portal.payments import groups, reconcile
from portal.payments import queries as payment_queries
from portal.payments.models import Payment
from portal.payments.refunds import refund_payment
from portal.states import PaymentStatus

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _api_key_identity() -> str:
    """Rate-limit per presented key (hashed), before authentication runs."""
    header = request.headers.get("Authorization", "")
    return "api:" + hashlib.sha256(header.encode()).hexdigest()[:24]


limiter.shared_limit(
    lambda: current_app.config["PORTAL_API_RATE_LIMIT"], scope="api", key_func=_api_key_identity
)(bp)

PUBLIC_ENDPOINTS = {"api.openapi"}
REQUEST_ID = {"request_id": "A payment request id (pr_…)."}


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
    g.log_merchant, g.log_api_key = key.merchant_id, key.id  # on every log line from here
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


def query(model: type[schemas.Query]) -> Any:
    """The query string as ``model``; an empty value is as if it were absent. A parameter
    the operation does not know is refused (400 ``unknown_field``), as unknown body
    fields are: a typo (``?statuss=open``) never silently widens a listing."""
    unknown = sorted(set(request.args) - set(model.model_fields))
    if unknown:
        raise ApiError(
            400, "unknown_field", f"{unknown[0]} is not a known query parameter.", unknown[0]
        )
    return parse(model, {k: v for k, v in request.args.items() if v != ""})


def answer(model: BaseModel, status: int = 200) -> Response:
    response = jsonify(model.model_dump(mode="json"))
    response.status_code = status
    return response


def idempotent(produce: Callable[[], tuple[int, BaseModel]], body: dict[str, Any]) -> Response:
    """Run ``produce`` once per Idempotency-Key (the same key and body, the same answer)."""
    key = request.headers.get("Idempotency-Key")
    fp = fingerprint(request.method, request.path, body)

    def stored() -> tuple[int, dict[str, Any]]:
        status, model = produce()
        return status, model.model_dump(mode="json")

    (status, payload), replayed = run_idempotent(g.merchant.id, key, fp, stored)
    response = jsonify(payload)
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


# --- payment requests -------------------------------------------------------------------


@operation(
    bp, "POST", "/payment-requests",
    summary="Create a payment request (statement, wallet top-up or order deposit).",
    body=schemas.CreatePaymentRequest,
    answers={201: (schemas.PaymentRequest, "Created.")},
    idempotent=True,
)  # fmt: skip
def create_payment_request() -> Response:
    raw = json_body()
    body = parse(schemas.CreatePaymentRequest, raw).root

    def produce() -> tuple[int, BaseModel]:
        pr = requests_service.create_payment_request(g.merchant, body, g.api_key.id)
        # Nothing can have been sent yet unless asked: spare the deliveries query.
        return 201, payment_request_answer(pr, None if body.send else [])

    return idempotent(produce, raw)


@operation(
    bp, "GET", "/payment-requests",
    summary="List payment requests, newest first.",
    query=schemas.ListPaymentRequests,
    answers={200: schemas.PaymentRequestList},
)  # fmt: skip
def list_payment_requests() -> Response:
    asked: schemas.ListPaymentRequests = query(schemas.ListPaymentRequests)
    rows, has_more = requests_service.list_for_merchant(
        g.merchant,
        status=asked.status,
        reference=asked.reference,
        customer_reference=asked.customer_reference,
        limit=asked.limit,
        starting_after=asked.starting_after,
    )
    return answer(
        schemas.PaymentRequestList(
            data=[payment_request_answer(pr) for pr in rows],
            has_more=has_more,
            next_starting_after=rows[-1].id if has_more else None,
        )
    )


@operation(
    bp, "GET", "/payment-requests/{request_id}",
    summary="Read a payment request.",
    answers={200: schemas.PaymentRequest},
    params=REQUEST_ID,
)  # fmt: skip
def get_payment_request(request_id: str) -> Response:
    pr = requests_service.get_for_merchant(g.merchant, request_id)
    return answer(payment_request_answer(pr))


def pdf_answer(body: bytes, filename: str) -> Response:
    response = Response(body, mimetype=PDF)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@operation(
    bp, "GET", "/payment-requests/{request_id}/card.pdf",
    summary="A reusable top-up link's printable QR card (PDF, A6 or credit-card size).",
    query=schemas.CardQuery,
    answers={200: (PDF, "The card, a PDF.")},
    params=REQUEST_ID,
)  # fmt: skip
def payment_request_card(request_id: str) -> Response:
    asked: schemas.CardQuery = query(schemas.CardQuery)
    body = requests_service.printable_card(g.merchant, request_id, asked.size, asked.locale)
    return pdf_answer(body, f"card-{asked.size}-{request_id}.pdf")


@operation(
    bp, "POST", "/payment-requests/{request_id}/void",
    summary="Void a payment request while nothing is paid.",
    answers={200: schemas.PaymentRequest},
    idempotent=True,
    params=REQUEST_ID,
)  # fmt: skip
def void_payment_request(request_id: str) -> Response:
    raw = json_body()

    def produce() -> tuple[int, BaseModel]:
        pr = requests_service.void_request(g.merchant, request_id)
        return 200, payment_request_answer(pr)

    return idempotent(produce, raw)


@operation(
    bp, "POST", "/payment-requests/void",
    summary="Void every open request of one customer.",
    body=schemas.VoidCustomer,
    answers={200: schemas.VoidResult},
    idempotent=True,
)  # fmt: skip
def void_customer_payment_requests() -> Response:
    raw = json_body()
    body = parse(schemas.VoidCustomer, raw)

    def produce() -> tuple[int, BaseModel]:
        ids = requests_service.void_customer_requests(g.merchant, body.customer_reference)
        return 200, schemas.VoidResult(count=len(ids), ids=ids)

    return idempotent(produce, raw)


@operation(
    bp, "POST", "/payment-requests/{request_id}/send",
    summary="Send the link to the customer by email or SMS (queued; see `deliveries`).",
    body=schemas.Send,
    answers={202: (schemas.LinkDelivery, "Queued.")},
    idempotent=True,
    params=REQUEST_ID,
)  # fmt: skip
def send_payment_request(request_id: str) -> Response:
    raw = json_body()
    body = parse(schemas.Send, raw)

    def produce() -> tuple[int, BaseModel]:
        pr = requests_service.get_for_merchant(g.merchant, request_id, lock=True)
        return 202, link_delivery_answer(send_link(pr, body.channel, body.to))

    return idempotent(produce, raw)


@operation(
    bp, "POST", "/customers/{reference}/link",
    summary="The customer's account link: every open request of this customer, paid together.",
    answers={200: schemas.CustomerLink},
    idempotent=True,
    params={"reference": "The customer's reference (`customer.reference` of its requests)."},
)  # fmt: skip
def create_customer_link(reference: str) -> Response:
    raw = json_body()
    ref = parse(schemas.CustomerReference, {"reference": reference}).reference

    def produce() -> tuple[int, BaseModel]:
        url, currency, ids = groups.customer_link(g.merchant, ref)
        return 200, schemas.CustomerLink(
            customer_reference=ref, url=url, currency=currency, open_requests=ids
        )

    return idempotent(produce, raw)


# --- payments ---------------------------------------------------------------------------


@operation(
    bp, "POST", "/payments/{payment_id}/refunds",
    summary="Refund a payment, fully (no amount) or partly, to its original payment method.",
    body=schemas.CreateRefund,
    answers={201: (schemas.Refund, "Refunded.")},
    idempotent=True,
    params={"payment_id": "A payment id (pay_…)."},
)  # fmt: skip
def create_refund(payment_id: str) -> Response:
    raw = json_body()
    body = parse(schemas.CreateRefund, raw)

    def produce() -> tuple[int, BaseModel]:
        refund = refund_payment(g.merchant, payment_id, body.amount, body.reason)
        return 201, refund_answer(refund)

    return idempotent(produce, raw)


# --- events -----------------------------------------------------------------------------


@operation(
    bp, "GET", "/events",
    summary="Every event in order (oldest first), for ledgers that reconcile by pulling.",
    query=schemas.ListEvents,
    answers={200: schemas.EventList},
)  # fmt: skip
def list_events() -> Response:
    asked: schemas.ListEvents = query(schemas.ListEvents)
    page, has_more = ledger.list_events(
        g.merchant.id, asked.starting_after, asked.limit, asked.type
    )
    return answer(
        schemas.EventList(
            data=[event_answer(e) for e in page],
            has_more=has_more,
            next_starting_after=page[-1].id if page else asked.starting_after,
        )
    )


@operation(
    bp, "POST", "/events/{event_id}/redeliver",
    summary="Queue the event again for every endpoint that wants it (a new attempt each).",
    answers={202: (schemas.CallbackDeliveryList, "Queued: one delivery per endpoint.")},
    idempotent=True,
    params={"event_id": "An event id (evt_…)."},
)  # fmt: skip
def redeliver_event(event_id: str) -> Response:
    raw = json_body()

    def produce() -> tuple[int, BaseModel]:
        deliveries = callbacks.redeliver_event(g.merchant.id, event_id)
        return 202, schemas.CallbackDeliveryList(
            data=[callback_delivery_answer(d) for d in deliveries]
        )

    return idempotent(produce, raw)


@operation(
    bp, "GET", "/openapi.json",
    summary="This document.",
    answers={200: None},
    public=True,
)  # fmt: skip
def openapi() -> Response:
    return jsonify(openapi_document())


# --- payments ---------------------------------------------------------------------------

PAYMENT_ID = {"payment_id": "A payment id (pay_…)."}


def payment_answer(p: Payment) -> schemas.Payment:
    return schemas.Payment(
        id=p.id, request_id=p.request_id, amount=p.amount, currency=p.currency,
        status=PaymentStatus(p.status),
        amount_refunded=p.amount_refunded, method=p.method_type, card_brand=p.card_brand,
        card_last4=p.card_last4, receipt_number=p.receipt_number, created_at=p.created_at,
        succeeded_at=p.succeeded_at,
    )  # fmt: skip


@operation(
    bp, "GET", "/payments",
    summary="List payments, newest first.",
    query=schemas.ListPayments,
    answers={200: schemas.PaymentList},
)  # fmt: skip
def list_payments() -> Response:
    asked: schemas.ListPayments = query(schemas.ListPayments)
    rows, has_more = payment_queries.list_payments(
        g.merchant, status=asked.status, request_id=asked.request_id, limit=asked.limit,
        starting_after=asked.starting_after,
    )  # fmt: skip
    return answer(
        schemas.PaymentList(
            data=[payment_answer(p) for p in rows],
            has_more=has_more,
            next_starting_after=rows[-1].id if has_more else None,
        )
    )


@operation(
    bp, "GET", "/payments/{payment_id}",
    summary="Read a payment.",
    answers={200: schemas.Payment},
    params=PAYMENT_ID,
)  # fmt: skip
def get_payment(payment_id: str) -> Response:
    return answer(payment_answer(payment_queries.get_payment(g.merchant, payment_id)))


@operation(
    bp, "GET", "/payments/{payment_id}/refunds",
    summary="The refunds of a payment, oldest first.",
    answers={200: schemas.RefundList},
    params=PAYMENT_ID,
)  # fmt: skip
def list_refunds(payment_id: str) -> Response:
    payment = payment_queries.get_payment(g.merchant, payment_id)
    return answer(
        schemas.RefundList(data=[refund_answer(r) for r in payment_queries.refunds_of(payment)])
    )


# --- the merchant's own settings --------------------------------------------------------


def merchant_answer(m: Merchant) -> schemas.Merchant:
    return schemas.Merchant(
        id=m.id, name=m.name, display_name=m.display_name, currency=m.currency,
        default_locale=m.default_locale, ceiling=m.ceiling, min_payment=m.min_payment,
        accent_color=m.accent_color, logo_url=m.logo_url, support_email=m.support_email,
        support_phone=m.support_phone, embed_origins=list(m.embed_origins or []),
        stripe_account=m.stripe_account, country=m.country, time_zone=m.time_zone,
        reminders=schemas.ReminderSettings.model_validate(m.reminders),
        daily_digest=bool(m.daily_digest),
    )  # fmt: skip


@operation(
    bp, "GET", "/merchant",
    summary="Your merchant's settings.",
    answers={200: schemas.Merchant},
)  # fmt: skip
def get_merchant() -> Response:
    return answer(merchant_answer(g.merchant))


@operation(
    bp, "PATCH", "/merchant",
    summary="Change your merchant's settings (the fields sent; null removes an optional one).",
    body=schemas.UpdateMerchant,
    answers={200: schemas.Merchant},
)  # fmt: skip
def update_merchant() -> Response:
    body = parse(schemas.UpdateMerchant, json_body())
    merchant = update_settings(g.merchant, body.model_dump(exclude_unset=True))
    return answer(merchant_answer(merchant))


# --- webhook endpoints ------------------------------------------------------------------

ENDPOINT_ID = {"endpoint_id": "A webhook endpoint id (we_…)."}


def endpoint_answer(e: CallbackEndpoint, secret: str | None = None) -> schemas.WebhookEndpoint:
    return schemas.WebhookEndpoint(
        id=e.id, url=e.url, enabled=e.enabled, disabled_reason=e.disabled_reason,
        event_types=list(e.event_types or []), created_at=e.created_at,
        previous_secret_valid_until=e.previous_secret_expires_at, secret=secret,
    )  # fmt: skip


@operation(
    bp, "GET", "/webhook-endpoints",
    summary="Your callback endpoints (never their secrets).",
    answers={200: schemas.WebhookEndpointList},
)  # fmt: skip
def list_webhook_endpoints() -> Response:
    rows = endpoints.list_endpoints(g.merchant)
    return answer(schemas.WebhookEndpointList(data=[endpoint_answer(e) for e in rows]))


@operation(
    bp, "POST", "/webhook-endpoints",
    summary="Add a callback endpoint; the answer carries its signing secret, once.",
    body=schemas.CreateWebhookEndpoint,
    answers={201: (schemas.WebhookEndpoint, "Created.")},
)  # fmt: skip
def create_webhook_endpoint() -> Response:
    body = parse(schemas.CreateWebhookEndpoint, json_body())
    endpoints.check_url(body.url)
    endpoint = callbacks.add_endpoint(g.merchant.id, body.url, [str(t) for t in body.event_types])
    return answer(endpoint_answer(endpoint, endpoint.secret), 201)


@operation(
    bp, "GET", "/webhook-endpoints/{endpoint_id}",
    summary="Read a callback endpoint.",
    answers={200: schemas.WebhookEndpoint},
    params=ENDPOINT_ID,
)  # fmt: skip
def get_webhook_endpoint(endpoint_id: str) -> Response:
    return answer(endpoint_answer(endpoints.get_endpoint(g.merchant, endpoint_id)))


@operation(
    bp, "PATCH", "/webhook-endpoints/{endpoint_id}",
    summary="Change a callback endpoint's URL, event types, or enable / disable it.",
    body=schemas.UpdateWebhookEndpoint,
    answers={200: schemas.WebhookEndpoint},
    params=ENDPOINT_ID,
)  # fmt: skip
def update_webhook_endpoint(endpoint_id: str) -> Response:
    body = parse(schemas.UpdateWebhookEndpoint, json_body())
    endpoint = endpoints.get_endpoint(g.merchant, endpoint_id)
    return answer(endpoint_answer(endpoints.update_endpoint(endpoint, body.model_dump())))


@operation(
    bp, "POST", "/webhook-endpoints/{endpoint_id}/rotate",
    summary="A new signing secret (in the answer, once); the old one signs too meanwhile.",
    body=schemas.RotateWebhookSecret,
    answers={200: schemas.WebhookEndpoint},
    params=ENDPOINT_ID,
)  # fmt: skip
def rotate_webhook_secret(endpoint_id: str) -> Response:
    body = parse(schemas.RotateWebhookSecret, json_body())
    endpoint = endpoints.get_endpoint(g.merchant, endpoint_id)
    secret = endpoints.rotate(endpoint, body.overlap_hours)
    return answer(endpoint_answer(endpoint, secret))


@operation(
    bp, "DELETE", "/webhook-endpoints/{endpoint_id}",
    summary="Delete a callback endpoint: nothing more is sent to it (what it was sent stays "
    "on record, deliveries still waiting are closed).",
    answers={200: schemas.DeletedWebhookEndpoint},
    params=ENDPOINT_ID,
)  # fmt: skip
def delete_webhook_endpoint(endpoint_id: str) -> Response:
    endpoint = endpoints.get_endpoint(g.merchant, endpoint_id)
    endpoints.delete_endpoint(endpoint)
    return answer(schemas.DeletedWebhookEndpoint(id=endpoint.id))


# --- reconciliation ---------------------------------------------------------------------


def reconciliation_range(since: date | None, until: date | None) -> tuple[date, date]:
    """The days asked (30 days up to today by default), at most a year, never reversed."""
    until = until or utcnow().date()
    if not date(1970, 1, 31) <= until <= date(9000, 1, 1) or (since and since.year < 1970):
        raise Invalid("invalid_period", "Days between 1970 and 9000 only.", "until")
    since = since or until - timedelta(days=30)
    if since > until:
        raise Invalid("invalid_period", "since is after until.", "since")
    if (until - since).days >= reconcile.MAX_DAYS:
        raise Invalid("invalid_period", "At most a year at a time.", "since")
    return since, until


@operation(
    bp, "GET", "/reconciliation",
    summary="Payments, refunds and line allocations of a date range: totals and CSV "
    "(the totals match the events of the same days).",
    query=schemas.Reconciliation,
    answers={200: schemas.ReconciliationAnswer},
)  # fmt: skip
def reconciliation() -> Response:
    asked: schemas.Reconciliation = query(schemas.Reconciliation)
    since, until = reconciliation_range(asked.since, asked.until)
    payments, refunds = reconcile.totals(g.merchant, since, until)
    return answer(
        schemas.ReconciliationAnswer(
            since=since, until=until, currency=g.merchant.currency,
            totals=schemas.ReconciliationTotals(payments=payments, refunds=refunds,
                                                net=payments + refunds),
            csv=reconcile.csv_text(g.merchant, since, until),
        )
    )  # fmt: skip


@operation(
    bp, "POST", "/webhook-endpoints/{endpoint_id}/test",
    summary="Send the endpoint a signed endpoint.test event (once, from the worker).",
    answers={202: (schemas.WebhookTest, "Queued.")},
    params=ENDPOINT_ID,
)  # fmt: skip
def test_webhook_endpoint(endpoint_id: str) -> Response:
    endpoint = endpoints.get_endpoint(g.merchant, endpoint_id)
    message_id = endpoints.queue_test_event(endpoint)
    return answer(schemas.WebhookTest(id=message_id, endpoint_id=endpoint.id), 202)
