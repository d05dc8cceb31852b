"""The customers who asked for no more reminders, and the signed links they use.

An unsubscribe link names one merchant, one channel and one address (as its SHA-256:
the link carries no address), signed with its own salt. Honoured from then on for
every reminder of that merchant to that address; a link the merchant sends on purpose
(the API's ``send``, the consoles' "send") still goes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.links import sign, unsign
from portal.reminders.models import ReminderOptOut

UNSUBSCRIBE_SALT = "portal.reminder-unsubscribe.v1"
CHANNELS = ("email", "sms")


@dataclass(frozen=True)
class Unsubscribe:
    merchant_id: str
    channel: str
    address_hash: str


def address_hash(channel: str, address: str) -> str:
    return hashlib.sha256(f"{channel}:{address.strip().lower()}".encode()).hexdigest()


def unsubscribe_token(merchant_id: str, channel: str, address: str) -> str:
    # The token's value holds only [A-Za-z0-9_-]: channel, hash, then the merchant's id.
    return sign(f"{channel}-{address_hash(channel, address)}-{merchant_id}", UNSUBSCRIBE_SALT)


def unsubscribe_url(merchant_id: str, channel: str, address: str, locale: str) -> str:
    base = current_app.config["PORTAL_BASE_URL"]
    return f"{base}/u/{unsubscribe_token(merchant_id, channel, address)}?lang={locale}"


def read_token(token: str) -> Unsubscribe | None:
    """What a token asks, or None for anything tampered or foreign."""
    value = unsign(token, UNSUBSCRIBE_SALT)
    if value is None:
        return None
    channel, _, rest = value.partition("-")
    digest, _, merchant_id = rest.partition("-")
    if channel not in CHANNELS or len(digest) != 64 or not merchant_id.startswith("mer_"):
        return None
    return Unsubscribe(merchant_id, channel, digest)


def is_opted_out(merchant_id: str, channel: str, address: str) -> bool:
    return (
        db.session.scalar(
            select(ReminderOptOut.id).where(
                ReminderOptOut.merchant_id == merchant_id,
                ReminderOptOut.channel == channel,
                ReminderOptOut.address_hash == address_hash(channel, address),
            )
        )
        is not None
    )


def opt_out(asked: Unsubscribe) -> None:
    """Record the opt-out (adds and flushes); asking twice, even at once, is one row (the
    unique constraint; the second waits in a savepoint and finds the first)."""
    exists = select(ReminderOptOut.id).where(
        ReminderOptOut.merchant_id == asked.merchant_id,
        ReminderOptOut.channel == asked.channel,
        ReminderOptOut.address_hash == asked.address_hash,
    )
    if db.session.scalar(exists) is not None:
        return
    try:
        with db.session.begin_nested():
            db.session.add(
                ReminderOptOut(
                    merchant_id=asked.merchant_id,
                    channel=asked.channel,
                    address_hash=asked.address_hash,
                )
            )
    except IntegrityError:
        pass  # asked at the same moment elsewhere: recorded once
