"""Merchant ledger callbacks, per the Standard Webhooks specification.

Every event is fanned out (in the transaction that wrote it) to one
:class:`CallbackDelivery` per matching endpoint, and a ``deliver_callback``
job. The job signs ``id.timestamp.body`` with the endpoint's ``whsec_``
secret, posts it to the address it checked (no DNS rebinding), records the
attempt, and reschedules itself on the retry schedule until it succeeds or is
dead-lettered. Outbound HTTP happens only here, in the worker.
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import joinedload
from standardwebhooks import Webhook

from portal.db_types import isoformat, utcnow
from portal.errors import Invalid, NotFound
from portal.extensions import db
from portal.jobs.claims import PER_KEY_LIMIT as PER_ENDPOINT
from portal.jobs.queue import RetryLater, enqueue, job_handler
from portal.ledger.models import (
    CallbackAttempt,
    CallbackDelivery,
    CallbackEndpoint,
    Event,
    event_body,
)
from portal.notices import services as notices
from portal.states import CallbackStatus, EventType

if TYPE_CHECKING:
    import urllib3

log = logging.getLogger(__name__)

USER_AGENT = "portal-callbacks/1"
EXCERPT = 300


class UnsafeURL(ValueError):
    """A callback URL the portal refuses to call (SSRF protection)."""


def _allowed_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_callback_url(url: str, *, allow_private: bool) -> tuple[str, str, int, str]:
    """Check ``url`` and return (scheme, host, port, ip to connect to).

    https and public addresses only, unless ``allow_private`` (development).
    Every address the name resolves to must be allowed, and the caller then
    connects to the one returned, so a second lookup cannot point elsewhere.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeURL("the URL must be https://host/path")
    if parts.scheme != "https" and not allow_private:
        raise UnsafeURL("callback URLs must use https")
    if parts.username or parts.password:
        raise UnsafeURL("credentials in the URL are not allowed")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"cannot resolve {parts.hostname}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeURL(f"cannot resolve {parts.hostname}")
    if not allow_private:
        for ip in addresses:
            if not _allowed_ip(ip):
                raise UnsafeURL(f"{parts.hostname} resolves to a non-public address ({ip})")
    return parts.scheme, parts.hostname, port, str(addresses[0])


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _allow_private() -> bool:
    return bool(current_app.config["PORTAL_ALLOW_PRIVATE_CALLBACKS"])


def add_endpoint(
    merchant_id: str, url: str, event_types: list[str] | None = None
) -> CallbackEndpoint:
    """Register an endpoint (caller commits); the secret is on the returned object."""
    try:
        resolve_callback_url(url, allow_private=_allow_private())
    except UnsafeURL as exc:
        raise Invalid("unsafe_url", str(exc), "url") from None
    for event_type in event_types or []:
        if event_type not in set(EventType):
            raise Invalid(
                "unknown_event_type", f"{event_type} is not an event type.", "event_types"
            )
    endpoint = CallbackEndpoint(
        merchant_id=merchant_id,
        url=url,
        secret=new_secret(),
        enabled=True,
        event_types=list(event_types or []),
    )
    db.session.add(endpoint)
    db.session.flush()
    return endpoint


def rotate_secret(endpoint: CallbackEndpoint, overlap: timedelta = timedelta(hours=24)) -> str:
    """A new secret; the old one keeps signing beside it during ``overlap`` (caller commits)."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + overlap
    endpoint.secret = new_secret()
    return endpoint.secret


def _wants(endpoint: CallbackEndpoint, event_type: str) -> bool:
    return endpoint.enabled and (not endpoint.event_types or event_type in endpoint.event_types)


def _queue(delivery: CallbackDelivery, endpoint_id: str) -> None:
    delivery.status = CallbackStatus.PENDING
    delivery.next_attempt_at = utcnow()
    enqueue(
        "deliver_callback",
        {"delivery_id": delivery.id},
        queue_key=f"endpoint:{endpoint_id}",
        max_attempts=1000,  # the delivery's own schedule decides when to stop
    )


def fan_out(events: list[Event]) -> None:
    """One delivery and one job per enabled endpoint that wants each of one merchant's
    events (no commit), in the events' order; the endpoints read once for all of them."""
    if not events:
        return
    merchant_id = events[0].merchant_id
    if any(event.merchant_id != merchant_id for event in events):
        raise ValueError("events of several merchants fanned out together")
    endpoints = db.session.scalars(
        select(CallbackEndpoint).where(
            CallbackEndpoint.merchant_id == merchant_id, CallbackEndpoint.enabled.is_(True)
        )
    ).all()
    deliveries = [
        (CallbackDelivery(event_id=event.id, endpoint_id=endpoint.id, merchant_id=merchant_id,
                          attempts=0), endpoint.id)
        for event in events
        for endpoint in endpoints
        if _wants(endpoint, event.type)
    ]  # fmt: skip
    if not deliveries:
        return
    db.session.add_all(delivery for delivery, _ in deliveries)
    db.session.flush()  # the deliveries' ids, for their jobs
    for delivery, endpoint_id in deliveries:
        _queue(delivery, endpoint_id)


def redeliver_event(merchant_id: str, event_id: str) -> list[CallbackDelivery]:
    """Send an event again to every endpoint that wants it, dead-lettered ones included.

    Each send is a new attempt on the delivery; the caller commits.
    """
    event = db.session.get(Event, event_id)
    if event is None or event.merchant_id != merchant_id:
        raise NotFound("event")
    deliveries = {
        d.endpoint_id: d
        for d in db.session.scalars(
            select(CallbackDelivery).where(CallbackDelivery.event_id == event.id)
        )
    }
    endpoints = db.session.scalars(
        select(CallbackEndpoint).where(
            CallbackEndpoint.merchant_id == merchant_id, CallbackEndpoint.deleted_at.is_(None)
        )
    ).all()
    queued = []
    for endpoint in endpoints:
        if not _wants(endpoint, event.type):
            continue
        delivery = deliveries.get(endpoint.id)
        if delivery is None:
            delivery = CallbackDelivery(
                event_id=event.id, endpoint_id=endpoint.id, merchant_id=merchant_id, attempts=0
            )
            db.session.add(delivery)
            db.session.flush()
        _queue(delivery, endpoint.id)
        queued.append(delivery)
    return queued


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    """The secret's key, decoded once, not once a callback (a signer holds no state)."""
    return Webhook(secret)


def signature_header(endpoint: CallbackEndpoint, msg_id: str, at: datetime, body: str) -> str:
    """``v1,<base64>`` — and the previous secret's signature too during a rotation."""
    signatures = [_signer(endpoint.secret).sign(msg_id, at, body)]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at
        and (endpoint.previous_secret_expires_at > utcnow())
    ):
        signatures.append(_signer(endpoint.previous_secret).sign(msg_id, at, body))
    return " ".join(signatures)


def _post(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, bytes, str | None]:
    """POST to the checked address; returns (status, body excerpt, Retry-After)."""
    # urllib3 (1.3 MB) is imported by the worker's first callback, not by every web worker.
    import urllib3

    scheme, host, port, ip = resolve_callback_url(url, allow_private=_allow_private())
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {**headers, "Host": host if port in (80, 443) else f"{host}:{port}"}
    pool = _pool(scheme, host, port, ip)
    response = pool.urlopen(
        "POST", path, body=body, headers=headers, redirect=False, preload_content=False,
        timeout=urllib3.Timeout(timeout), retries=False,
    )  # fmt: skip
    try:
        excerpt = response.read(EXCERPT * 4, decode_content=True)
        return response.status, excerpt, response.headers.get("Retry-After")
    finally:
        # A short rest is read so the connection can serve the next callback; a long one
        # (or one of unknown length) is not worth it: that connection is dropped.
        remaining = response.length_remaining
        if remaining is not None and remaining <= 65536:
            response.drain_conn()
        else:
            response.close()
        response.release_conn()


# Connections kept alive per ledger address (keep-alive: no new TCP and TLS handshake per
# callback). Keyed by the address the URL resolved to for this delivery, so a DNS change
# or a private address is never reached through an old pool; at most POOLS addresses.
POOLS = 256
_pools: OrderedDict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = OrderedDict()
_pools_lock = threading.Lock()


def _pool(scheme: str, host: str, port: int, ip: str) -> urllib3.HTTPConnectionPool:
    import urllib3

    key = (scheme, host, port, ip)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            _pools.move_to_end(key)
            return pool
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                ip, port, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED",
                maxsize=PER_ENDPOINT, block=False,
            )  # fmt: skip
        else:
            pool = urllib3.HTTPConnectionPool(ip, port, maxsize=PER_ENDPOINT, block=False)
        _pools[key] = pool
        if len(_pools) > POOLS:
            _, oldest = _pools.popitem(last=False)
            oldest.close()
        return pool


def post_errors() -> tuple[type[Exception], ...]:
    """What a failed post raises: a refused address, HTTP and socket errors (an ``except``
    evaluates this only when something was raised)."""
    import urllib3

    return (UnsafeURL, urllib3.exceptions.HTTPError, OSError)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - utcnow()).total_seconds(), 0)


def _delay_after(attempts: int) -> float | None:
    """Seconds until the next try after ``attempts`` tries, with jitter; None when out."""
    schedule = current_app.config["PORTAL_CALLBACK_SCHEDULE"]
    if attempts >= len(schedule):
        return None
    base = schedule[attempts]
    return base * random.uniform(0.9, 1.1)


def _dead_letter(delivery: CallbackDelivery, endpoint: CallbackEndpoint, gone: bool) -> None:
    """No more tries; the merchant hears of it in this transaction (portal/notices): at
    once when the endpoint has just gone (410), else in the endpoint's hourly batch."""
    delivery.status = CallbackStatus.DEAD
    delivery.next_attempt_at = None
    log.warning("callback %s dead-lettered after %s attempts", delivery.id, delivery.attempts)
    if gone:
        notices.endpoint_disabled(endpoint)
    else:
        notices.dead_lettered(endpoint)


_attempts = cast(Table, CallbackAttempt.__table__)
_ATTEMPT = insert(_attempts)
_ATTEMPT_COLUMNS = tuple(c.key for c in _attempts.columns if c.key != "id")


def _record(attempt: CallbackAttempt) -> None:
    """The try's row, by a Core INSERT: nothing reads it back in this transaction, and an
    ORM object to flush (with its id returned) costs more than the statement."""
    db.session.execute(_ATTEMPT, {name: getattr(attempt, name) for name in _ATTEMPT_COLUMNS})


@job_handler("deliver_callback")
def deliver_callback(payload: dict[str, Any]) -> None:
    delivery = db.session.get(
        CallbackDelivery,
        payload["delivery_id"],
        # One query for what the delivery needs, instead of one per relationship.
        options=(joinedload(CallbackDelivery.endpoint), joinedload(CallbackDelivery.event)),
    )
    if delivery is None or delivery.status != CallbackStatus.PENDING:
        return
    endpoint, event = delivery.endpoint, delivery.event
    attempt = CallbackAttempt(delivery_id=delivery.id, attempted_at=utcnow())
    delivery.attempts += 1
    status: int | None = None
    retry_after: float | None = None
    if not endpoint.enabled:
        attempt.error = f"endpoint disabled: {endpoint.disabled_reason or 'by the merchant'}"
    else:
        body = json.dumps(event_body(event), separators=(",", ":"), ensure_ascii=False)
        now = utcnow()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": event.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(endpoint, event.id, now, body),
        }
        started = time.monotonic()
        try:
            status, excerpt, retry_header = _post(
                endpoint.url, body.encode(), headers, current_app.config["PORTAL_CALLBACK_TIMEOUT"]
            )
            attempt.status_code = status
            attempt.response_excerpt = excerpt.decode("utf-8", "replace")[:EXCERPT]
            if status in (429, 503):
                retry_after = _retry_after(retry_header)
        except UnsafeURL as exc:
            attempt.error = f"refused: {exc}"
        except post_errors() as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"[:500]
        attempt.latency_ms = int((time.monotonic() - started) * 1000)
    delivery.last_status_code = status
    ok = status is not None and 200 <= status < 300
    delivery.last_error = attempt.error or (None if ok else f"HTTP {status}")
    if ok:
        delivery.status = CallbackStatus.SUCCEEDED
        delivery.delivered_at = attempt.attempted_at
        delivery.next_attempt_at = None
        _record(attempt)
        return
    gone = status == 410 and endpoint.enabled
    if gone:
        endpoint.enabled = False
        endpoint.disabled_reason = f"answered 410 Gone on {isoformat(attempt.attempted_at)}"
    delay = None if status == 410 or not endpoint.enabled else _delay_after(delivery.attempts)
    if delay is not None and retry_after is not None:
        delay = min(max(delay, retry_after), 86400)
    if delay is None:
        _record(attempt)
        _dead_letter(delivery, endpoint, gone)
        return
    attempt.next_attempt_at = delivery.next_attempt_at = utcnow() + timedelta(seconds=delay)
    _record(attempt)
    raise RetryLater(delivery.last_error or "callback failed", timedelta(seconds=delay))
