"""Receiving a payment provider's webhooks: verify on the raw body, store the event by id,
hand it to the provider's handler, all in the request's one transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from portal.errors import NotFound
from portal.extensions import db
from portal.providers.base import NAMES, PaymentProvider, WebhookRefused, get_provider
from portal.webhooks.models import StripeEvent

log = logging.getLogger(__name__)


def receive(name: str, payload: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """What to answer the provider ``name``: 400 for what is not its event, 200 for a
    duplicate or a handled event, 503 (retry) when handling failed."""
    provider = get_provider(name) if name in NAMES else None
    if provider is None or not provider.webhooks:
        raise NotFound("webhook endpoint")
    try:
        event = provider.verify_webhook(payload, headers)
    except WebhookRefused as refused:
        return 400, {"error": {"code": refused.code, "message": refused.message}}
    # The event id is claimed in the same transaction as what the event changes: one
    # commit for both. A concurrent duplicate waits on the id's insert (the primary key
    # on PostgreSQL, the write lock on SQLite), then fails it: that, and only that, is
    # a duplicate.
    stored = StripeEvent(id=event["id"], type=event["type"], account=event.get("account"))
    try:
        db.session.add(stored)
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return 200, {"received": True, "duplicate": True}
    return _handle(provider, name, event)


def _handle(
    provider: PaymentProvider, name: str, event: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    try:
        outcome = provider.handle_webhook(event)
        db.session.execute(
            update(StripeEvent).where(StripeEvent.id == event["id"]).values(outcome=outcome[:300])
        )
        db.session.flush()  # a constraint fails here, inside the handling, not at the commit
    except Exception:
        # Any other failure, a constraint included, is not a duplicate: let the provider
        # retry. The rollback forgets the event id too, so the retry is handled.
        log.exception("%s event %s failed", name, event["id"])
        db.session.rollback()
        return 503, {"error": {"code": "retry", "message": "Try again later."}}
    return 200, {"received": True, "outcome": outcome}
