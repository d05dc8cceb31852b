"""Short links for SMS: ``<base>/s/<code>``, leading to the request's ``/p/`` page.

A code is 16 characters of ``[0-9A-Za-z]``: 10 random ones (about 59.5 bits, stored in
``short_links`` with the request they name) and 6 of an HMAC of those under the
portal's secret key (about 35.7 bits more), so a forged or mistyped code is refused
without asking the database, and guessing a live one is out of reach even without the
rate limit. Every configured key verifies (the newest signs): rotating keys keeps the
SMS already sent working while the old key stays listed, as for ``/p/`` links.

The code names the request only; expiry and voiding stay the database's (the ``/p/``
page decides, as for the long link). One code per request, made when first needed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portal.delivery.models import ShortLink
from portal.extensions import db
from portal.ids import _ALPHABET

SALT = b"portal.short-link.v1"
RANDOM_CHARS = 10
SIGNATURE_CHARS = 6
CODE = re.compile(rf"[0-9A-Za-z]{{{RANDOM_CHARS + SIGNATURE_CHARS}}}")


def _signature(random_part: str, key: str) -> str:
    digest = hmac.new(key.encode(), SALT + random_part.encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(SIGNATURE_CHARS):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(chars)


def new_code() -> str:
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(RANDOM_CHARS))
    return random_part + _signature(random_part, current_app.config["PORTAL_SECRET_KEYS"][0])


def signed(code: str) -> bool:
    """A code as the portal writes it, signed under one of the configured keys. The
    alphabet is checked first: nothing outside ``[0-9A-Za-z]`` (no zero-width space, no
    accent, no dot) ever reaches the comparison."""
    if not isinstance(code, str) or not CODE.fullmatch(code):
        return False
    random_part, signature = code[:RANDOM_CHARS], code[RANDOM_CHARS:]
    return any(
        hmac.compare_digest(_signature(random_part, key), signature)
        for key in current_app.config["PORTAL_SECRET_KEYS"]
    )


def request_id_for(code: str) -> str | None:
    """The request a code names; None for forged, foreign or unknown codes."""
    if not signed(code):
        return None
    return db.session.scalar(select(ShortLink.request_id).where(ShortLink.code == code))


def short_code(request_id: str) -> str:
    """The request's code, made on first use (in the caller's transaction). Two jobs
    asking at once both get the one the database kept."""
    existing = db.session.scalar(select(ShortLink.code).where(ShortLink.request_id == request_id))
    if existing:
        return existing
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(ShortLink).values(code=new_code(), request_id=request_id).on_conflict_do_nothing()
    )
    return db.session.scalars(
        select(ShortLink.code).where(ShortLink.request_id == request_id)
    ).one()


def short_url(request_id: str) -> str:
    """``<base>/s/<code>``: what link SMS carry (reminders too: call this for their URL)."""
    return f"{current_app.config['PORTAL_BASE_URL']}/s/{short_code(request_id)}"
