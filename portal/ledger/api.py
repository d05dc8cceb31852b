"""``GET /api/v1/events`` and ``POST /api/v1/events/{id}/redeliver``: reconcile by pulling."""

from __future__ import annotations

from flask import Response, g, jsonify, request
from sqlalchemy import select

from portal.api.openapi import (
    DATETIME,
    EXTRA_PATHS,
    EXTRA_SCHEMAS,
    IDEMPOTENCY,
    INT,
    STR,
    json_content,
    list_of,
    nullable,
    operation,
    path_param,
    query_param,
    record,
    ref,
)
from portal.api.views import bp, idempotent, json_body, query_int
from portal.db_types import isoformat
from portal.errors import Invalid
from portal.extensions import db
from portal.ledger.callbacks import redeliver_event
from portal.ledger.models import CallbackDelivery, Event
from portal.ledger.services import EVENT_TYPES, event_body


def delivery_json(d: CallbackDelivery) -> dict:
    return {
        "id": d.id,
        "object": "callback_delivery",
        "event_id": d.event_id,
        "endpoint_id": d.endpoint_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": isoformat(d.next_attempt_at),
    }


@bp.get("/events")
def list_events() -> Response:
    limit = query_int("limit", 50, 1, 500)
    query = select(Event).where(Event.merchant_id == g.merchant.id)
    event_type = request.args.get("type")
    if event_type:
        if event_type not in EVENT_TYPES:
            raise Invalid("invalid_value", "type is not a known event type.", "type")
        query = query.where(Event.type == event_type)
    after = request.args.get("starting_after")
    if after:
        cursor = db.session.get(Event, after)
        if cursor is None or cursor.merchant_id != g.merchant.id:
            raise Invalid(
                "invalid_cursor", "starting_after is not one of your events.", "starting_after"
            )
        query = query.where(Event.seq > cursor.seq)
    rows = db.session.scalars(query.order_by(Event.seq).limit(limit + 1)).all()
    page = rows[:limit]
    return jsonify(
        object="list",
        data=[event_body(e) for e in page],
        has_more=len(rows) > limit,
        next_starting_after=page[-1].id if page else after,
    )


@bp.post("/events/<event_id>/redeliver")
def redeliver(event_id: str) -> Response:
    body = json_body()

    def produce() -> tuple[int, dict]:
        deliveries = redeliver_event(g.merchant.id, event_id)
        return 202, {"object": "list", "data": [delivery_json(d) for d in deliveries]}

    return idempotent(produce, body)


EXTRA_SCHEMAS["Event"] = {
    "type": "object",
    "required": ["id", "type", "sequence", "created_at", "data"],
    "properties": {
        "id": {**STR, "pattern": "^evt_"},
        "type": {"type": "string", "enum": list(EVENT_TYPES)},
        "sequence": {"type": "integer", "description": "Per merchant, strictly increasing."},
        "created_at": {"type": "string", "format": "date-time"},
        "data": {"type": "object"},
    },
}
_DELIVERY_PROPERTIES = {
    "id": {**STR, "pattern": "^del_"},
    "object": {"const": "callback_delivery"},
    "event_id": {**STR, "pattern": "^evt_"},
    "endpoint_id": {**STR, "pattern": "^we_"},
    "status": {"type": "string", "enum": ["pending", "succeeded", "dead"]},
    "attempts": INT,
    "next_attempt_at": nullable(DATETIME),
}
EXTRA_SCHEMAS["CallbackDelivery"] = record(_DELIVERY_PROPERTIES)
EXTRA_PATHS["/events"] = {
    "get": operation(
        "listEvents",
        "Every event in order (oldest first), for ledgers that reconcile by pulling.",
        {"200": json_content(list_of("Event"))},
        params=[
            query_param("starting_after", STR, "The last event id you have."),
            query_param(
                "limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size (50)."
            ),
            query_param("type", STR, "Only this event type."),
        ],
    )
}
EXTRA_PATHS["/events/{event_id}/redeliver"] = {
    "post": operation(
        "redeliverEvent",
        "Queue the event again for every endpoint that wants it (a new attempt each).",
        {
            "202": json_content(
                {
                    "type": "object",
                    "required": ["object", "data"],
                    "properties": {
                        "object": {"const": "list"},
                        "data": {"type": "array", "items": ref("CallbackDelivery")},
                    },
                },
                "Queued: one delivery per endpoint that wants the event.",
            )
        },
        params=[path_param("event_id", "An event id (evt_…)."), IDEMPOTENCY],
    )
}
