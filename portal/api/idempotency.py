"""``Idempotency-Key``: the same key and body give the same answer; another body is a 409.

The key row is inserted *before* the work, in the same transaction. On
PostgreSQL a concurrent request with the same key blocks on that insert until
the first commits, then fails on the primary key and returns the stored
answer: whatever the timing, only one object is created.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from portal.api.models import IdempotencyKey
from portal.db_types import utcnow
from portal.errors import ApiError, Conflict
from portal.extensions import db

Response = tuple[int, dict[str, Any]]

# The key's row is written with Core statements built once: it is never read back as an
# object, and the ORM's unit of work would cost two flushes a create.
_keys = cast(Table, IdempotencyKey.__table__)
_CLAIM = insert(_keys)
_ANSWER = (
    update(_keys)
    .where(_keys.c.merchant_id == bindparam("m"), _keys.c.key == bindparam("k"))
    .values(response_status=bindparam("status"), response_body=bindparam("body"))
)


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _replay(merchant_id: str, key: str, fp: str) -> Response | None:
    row = db.session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.merchant_id == merchant_id, IdempotencyKey.key == key
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != fp:
        raise Conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was used with another request body.",
        )
    return row.response_status, row.response_body


def run_idempotent(
    merchant_id: str, key: str | None, fp: str, produce: Callable[[], Response]
) -> tuple[Response, bool]:
    """Run ``produce`` once per key (the request commits); returns (answer, replayed)."""
    if key is None:
        return produce(), False
    if not 1 <= len(key) <= 255:
        raise ApiError(
            400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters."
        )
    # Insert first, look up only on a conflict: a replay is rare, a new request is not,
    # and the insert is also what makes a concurrent twin wait for this one's commit.
    try:
        db.session.execute(
            _CLAIM,
            {"merchant_id": merchant_id, "key": key, "fingerprint": fp, "response_status": 0,
             "response_body": {}, "created_at": utcnow()},
        )  # fmt: skip
        status, body = produce()
        db.session.flush()  # what produce() added, before its answer is stored
        db.session.execute(_ANSWER, {"m": merchant_id, "k": key, "status": status, "body": body})
    except IntegrityError:
        db.session.rollback()
        stored = _replay(merchant_id, key, fp)
        if stored is None:
            raise
        return stored, True
    except Exception:
        db.session.rollback()
        raise
    return (status, body), False
