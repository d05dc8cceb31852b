"""``POST /webhooks/stripe``: verify on the raw body, store by id, hand to a plain handler."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from portal.extensions import csrf, db
from portal.webhooks.models import StripeEvent
from portal.webhooks.stripe_events import handle_event

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)


@bp.post("/stripe")
def stripe_webhook() -> Response:
    from portal.providers.stripe import SignatureError, construct_event

    try:
        event = construct_event(request.get_data(), request.headers.get("Stripe-Signature"))
    except (SignatureError, ValueError, KeyError):
        return jsonify(
            error={"code": "invalid_signature", "message": "Signature check failed."}
        ), 400
    if not isinstance(event.get("id"), str) or "data" not in event:
        return jsonify(error={"code": "invalid_event", "message": "Not an event."}), 400
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
        return jsonify(received=True, duplicate=True)
    try:
        outcome = handle_event(event)
        db.session.execute(
            update(StripeEvent).where(StripeEvent.id == event["id"]).values(outcome=outcome[:300])
        )
        db.session.flush()  # a constraint fails here, inside the handling, not at the commit
    except Exception:
        # Any other failure, a constraint included, is not a duplicate: let Stripe retry.
        # The rollback forgets the event id too, so the retry is handled.
        log.exception("stripe event %s failed", event["id"])
        db.session.rollback()
        return jsonify(error={"code": "retry", "message": "Try again later."}), 503
    return jsonify(received=True, outcome=outcome)
