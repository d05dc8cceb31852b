"""A merchant's callback endpoints as the API manages them: list, read, change, rotate.

Adding one is :func:`portal.ledger.callbacks.add_endpoint`; every send checks the URL
again. Services add and flush; the request commits.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from portal.db_types import isoformat, utcnow
from portal.errors import Invalid, NotFound
from portal.extensions import db
from portal.ids import new_id
from portal.jobs.queue import enqueue, job_handler
from portal.ledger.callbacks import (
    USER_AGENT,
    UnsafeURL,
    post_errors,
    resolve_callback_url,
    rotate_secret,
    signature_header,
)
from portal.ledger.callbacks import _post as post_callback
from portal.ledger.models import CallbackDelivery, CallbackEndpoint
from portal.merchants.models import Merchant
from portal.states import CallbackStatus, EventType

log = logging.getLogger(__name__)


def list_endpoints(merchant: Merchant) -> list[CallbackEndpoint]:
    return list(
        db.session.scalars(
            select(CallbackEndpoint)
            .where(
                CallbackEndpoint.merchant_id == merchant.id, CallbackEndpoint.deleted_at.is_(None)
            )
            .order_by(CallbackEndpoint.created_at, CallbackEndpoint.id)
        )
    )


def get_endpoint(merchant: Merchant, endpoint_id: str) -> CallbackEndpoint:
    endpoint = db.session.get(CallbackEndpoint, endpoint_id)
    if endpoint is None or endpoint.merchant_id != merchant.id or endpoint.deleted_at:
        raise NotFound("webhook endpoint")
    return endpoint


def delete_endpoint(endpoint: CallbackEndpoint) -> None:
    """No more callbacks to it, none redelivered; what it was sent stays on record. Its
    deliveries still waiting are closed (dead, "endpoint deleted")."""
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted by the merchant"
    endpoint.deleted_at = utcnow()
    db.session.execute(
        update(CallbackDelivery)
        .where(
            CallbackDelivery.endpoint_id == endpoint.id,
            CallbackDelivery.status == CallbackStatus.PENDING,
        )
        .values(status=CallbackStatus.DEAD, next_attempt_at=None, last_error="endpoint deleted")
        .execution_options(synchronize_session=False)
    )
    db.session.flush()


def check_url(url: str) -> None:
    try:
        resolve_callback_url(url, allow_private=bool(current_app.config[
            "PORTAL_ALLOW_PRIVATE_CALLBACKS"]))  # fmt: skip
    except (UnsafeURL, ValueError) as exc:  # ValueError: a port out of range
        raise Invalid("unsafe_url", str(exc), "url") from None


def update_endpoint(endpoint: CallbackEndpoint, changes: dict[str, Any]) -> CallbackEndpoint:
    """The fields sent: ``url`` (checked), ``event_types``, ``enabled``."""
    if changes.get("url") is not None:
        check_url(changes["url"])
        endpoint.url = changes["url"]
    if changes.get("event_types") is not None:
        for event_type in changes["event_types"]:
            if event_type not in set(EventType):
                raise Invalid("unknown_event_type", f"{event_type} is not an event type.",
                              "event_types")  # fmt: skip
        endpoint.event_types = list(changes["event_types"])
    if changes.get("enabled") is not None:
        endpoint.enabled = changes["enabled"]
        endpoint.disabled_reason = None if endpoint.enabled else "disabled by the merchant"
    db.session.flush()
    return endpoint


def rotate(endpoint: CallbackEndpoint, overlap_hours: int) -> str:
    secret = rotate_secret(endpoint, timedelta(hours=overlap_hours))
    db.session.flush()
    return secret


def queue_test_event(endpoint: CallbackEndpoint) -> str:
    """A signed ``endpoint.test`` event for the endpoint, sent once by a job (not an event
    of the events API: nothing for a ledger to book). Returns its ``webhook-id``."""
    message_id = new_id("evt_test")
    enqueue("send_test_callback", {"endpoint_id": endpoint.id, "id": message_id},
            max_attempts=1)  # fmt: skip
    return message_id


@job_handler("send_test_callback")
def send_test_callback(payload: dict[str, Any]) -> None:
    endpoint = db.session.get(CallbackEndpoint, payload["endpoint_id"])
    if endpoint is None:
        return
    now = utcnow()
    body = json.dumps({"id": payload["id"], "type": "endpoint.test", "created_at":
                       isoformat(now), "data": {"endpoint_id": endpoint.id}},
                      separators=(",", ":"))  # fmt: skip
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": payload["id"],
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header(endpoint, payload["id"], now, body),
    }
    try:
        status, _, _ = post_callback(
            endpoint.url, body.encode(), headers, current_app.config["PORTAL_CALLBACK_TIMEOUT"]
        )
        log.info("test event %s to %s: HTTP %s", payload["id"], endpoint.id, status)
    except post_errors() as exc:
        log.info("test event %s to %s failed: %s", payload["id"], endpoint.id, exc)
