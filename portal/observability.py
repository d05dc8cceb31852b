"""Request ids, access log, Prometheus metrics, and the health probes.

- ``/healthz``: the process answers (no database call: a liveness probe must not
  restart web processes because PostgreSQL is slow).
- ``/readyz``: the database answers, its schema is at the migrations' head, and the
  oldest due job waited less than ``PORTAL_READY_MAX_JOB_AGE`` seconds. Each payment
  provider's circuit is shown too (``provider:stripe``), and the rate-limit storage
  (``ratelimit``), without deciding readiness: an unreachable Stripe or Redis must not
  take the pages and the API out of the load balancer.
- ``/metrics``: Prometheus text format. Request counts and latencies come from this
  process (or, under gunicorn with ``PROMETHEUS_MULTIPROC_DIR``, from every worker);
  payments, jobs and callbacks are read from the database at scrape time, so they
  are the same whichever process answers.
"""

from __future__ import annotations

import ast
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, abort, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as render_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select, text

from portal.config import ROOT
from portal.db_types import utcnow
from portal.extensions import db, limiter
from portal.jobs.claims import oldest_due_at
from portal.jobs.models import Job
from portal.ledger.models import CallbackDelivery
from portal.logs import mask, mask_path
from portal.payments.models import Payment
from portal.providers.circuit import circuits
from portal.states import CallbackStatus, JobStatus

access_log = logging.getLogger("portal.access")

# A caller's request id is kept only in a shape no secret has: letters, digits and dashes
# (UUIDs, hex trace ids). An API key, a link token or anything else is replaced.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{7,63}")
# Process-local series live in their own registry: several apps in one process (tests)
# share them, and the default registry stays free for whoever embeds the portal.
REQUESTS_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "portal_http_requests",
    "HTTP requests answered, by route and status.",
    ["method", "route", "status"],
    registry=REQUESTS_REGISTRY,
)
LATENCY = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer, by route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REQUESTS_REGISTRY,
)
QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/static/")


def _start_request() -> None:
    g.started = time.perf_counter()
    g.pop("log_merchant", None)  # set again by the API's authentication, for this request
    g.pop("log_api_key", None)
    asked = request.headers.get("X-Request-Id", "")
    g.request_id = asked if _safe_request_id(asked) else secrets.token_hex(8)


def _safe_request_id(asked: str) -> bool:
    return bool(REQUEST_ID.fullmatch(asked)) and mask(asked) == asked


def _finish_request(response: Response) -> Response:
    started = g.get("started")
    if started is None:
        return response
    elapsed = time.perf_counter() - started
    route = request.url_rule.rule if request.url_rule else "unmatched"
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    LATENCY.labels(request.method, route).observe(elapsed)
    response.headers["X-Request-Id"] = g.request_id
    if not request.path.startswith(QUIET_PATHS) or response.status_code >= 500:
        access_log.info(
            '%s "%s %s" %s %.1fms',
            request.remote_addr,
            request.method,
            mask_path(request.path),
            response.status_code,
            elapsed * 1000,
            extra={
                "method": request.method,
                "path": mask_path(request.path),
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
                "client": request.remote_addr,
            },
        )
    return response


class DatabaseCollector:
    """Gauges read from the database at scrape time."""

    def collect(self) -> Iterator[Metric]:

        payments = GaugeMetricFamily("portal_payments", "Payments by status.", labels=["status"])
        for status, count in db.session.execute(
            select(Payment.status, func.count()).group_by(Payment.status)
        ):
            payments.add_metric([str(status)], count)
        yield payments

        now = utcnow()
        queued = GaugeMetricFamily(
            "portal_jobs_queued", "Jobs waiting (due or scheduled), by kind.", labels=["kind"]
        )
        oldest = GaugeMetricFamily(
            "portal_jobs_oldest_due_age_seconds",
            "How long the oldest due job has waited, by kind.",
            labels=["kind"],
        )
        due = db.session.execute(
            select(Job.kind, func.count(), func.min(Job.run_at))
            .where(Job.status == JobStatus.QUEUED)
            .group_by(Job.kind)
        )
        for kind, count, first_run_at in due:
            queued.add_metric([kind], count)
            wait = (now - first_run_at).total_seconds() if first_run_at else 0.0
            oldest.add_metric([kind], max(wait, 0.0))
        yield queued
        yield oldest

        running = GaugeMetricFamily(
            "portal_jobs_running", "Jobs in flight (claimed, not finished), by kind.",
            labels=["kind"],
        )  # fmt: skip
        rows = db.session.execute(
            select(Job.kind, func.count()).where(Job.status == JobStatus.RUNNING).group_by(Job.kind)
        )
        for kind, count in rows:
            running.add_metric([kind], count)
        yield running
        yield from _circuit_metrics()
        storage = GaugeMetricFamily(
            "portal_ratelimit_storage_up",
            "1 while the rate-limit storage (Redis) answers; 0: limits count per process.",
        )
        storage.add_metric([], 1.0 if ratelimit_storage_up() else 0.0)
        yield storage

        failing = GaugeMetricFamily(
            "portal_callback_deliveries_failing",
            "Callback deliveries that failed at least once and are waiting to retry, by merchant.",
            labels=["merchant"],
        )
        dead = GaugeMetricFamily(
            "portal_callback_deliveries_dead",
            "Callback deliveries out of retries (dead letters), by merchant.",
            labels=["merchant"],
        )
        deliveries = db.session.execute(
            select(CallbackDelivery.merchant_id, CallbackDelivery.status, func.count())
            .where(
                (CallbackDelivery.status == CallbackStatus.DEAD)
                | (
                    (CallbackDelivery.status == CallbackStatus.PENDING)
                    & (CallbackDelivery.attempts > 0)
                )
            )
            .group_by(CallbackDelivery.merchant_id, CallbackDelivery.status)
        )
        for merchant_id, status, count in deliveries:
            (dead if status == CallbackStatus.DEAD else failing).add_metric([merchant_id], count)
        yield failing
        yield dead


def _circuit_metrics() -> Iterator[Metric]:

    open_ = GaugeMetricFamily(
        "portal_provider_circuit_open",
        "1 while the worker's circuit breaker keeps calls to this payment provider back.",
        labels=["provider"],
    )
    failures = GaugeMetricFamily(
        "portal_provider_consecutive_failures",
        "Calls to this payment provider that failed in a row (reconciliation).",
        labels=["provider"],
    )
    for circuit in circuits():
        open_.add_metric([circuit.provider], 1.0 if circuit.retry_at else 0.0)
        failures.add_metric([circuit.provider], circuit.failures)
    yield open_
    yield failures


class _Scrape:
    """This scrape's request series: this process's, or every worker's in multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if multiproc:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=multiproc)
            yield from registry.collect()
        else:
            yield from REQUESTS_REGISTRY.collect()


def _metrics_allowed() -> bool:
    token = current_app.config["PORTAL_METRICS_TOKEN"]
    if not token:
        return current_app.config["PORTAL_ENV"] != "production"
    sent = request.headers.get("Authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def _migrations_head() -> str | None:
    head = current_app.extensions.get("portal_migrations_head")
    if head is None:
        head = current_app.extensions["portal_migrations_head"] = migrations_head(
            ROOT / "migrations" / "versions"
        )
    return head


_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.M)


def migrations_head(versions: Path) -> str | None:
    """The one revision no script revises, read from the scripts' ``revision`` and
    ``down_revision`` lines: Alembic's own reader costs every web worker 11 MB of memory
    for this one readiness check (a test compares the two). None unless exactly one head."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in versions.glob("*.py"):
        for name, value in _REVISION_LINE.findall(script.read_text(encoding="utf-8")):
            parsed = ast.literal_eval(value)
            found = {parsed} if isinstance(parsed, str) else set(parsed or ())
            (revisions if name == "revision" else revised).update(found)
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def ratelimit_storage_up() -> bool:
    """Whether the rate-limit storage answers a ping (memory:// always does; with limits
    off there is nothing to be down)."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return True
    try:
        return bool(limiter.storage.check())
    except Exception:
        return False


def readiness() -> tuple[bool, dict[str, object]]:
    """Each readiness check with its outcome; ready only when all pass (the providers'
    circuits are shown, but decide nothing)."""

    checks: dict[str, object] = {}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:
        db.session.rollback()
        checks["database"] = f"unreachable: {type(exc).__name__}"
        return False, checks
    checks["database"] = "ok"
    try:
        current = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:
        db.session.rollback()
        current = None
    head = _migrations_head()
    checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    limit = current_app.config["PORTAL_READY_MAX_JOB_AGE"]
    now = utcnow()
    first = oldest_due_at(now)
    age = (now - first).total_seconds() if first else 0.0
    if limit and age > limit:
        checks["jobs"] = f"oldest due job waited {age:.0f}s (limit {limit}s)"
    else:
        checks["jobs"] = "ok"
    ready = all(value == "ok" for value in checks.values())
    for circuit in circuits():
        checks[f"provider:{circuit.provider}"] = circuit.describe()
    # Shown, never deciding: with Redis away the portal fails open to per-process limits.
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        checks["ratelimit"] = "off"
    elif ratelimit_storage_up():
        checks["ratelimit"] = "ok"
    else:
        checks["ratelimit"] = "unreachable: limits count per process (in memory)"
    return ready, checks


def init_app(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        ready, checks = readiness()
        return jsonify(status="ready" if ready else "not_ready", checks=checks), (
            200 if ready else 503
        )

    @app.get("/metrics")
    def metrics() -> Response:
        if not _metrics_allowed():
            abort(404)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Scrape())
        registry.register(DatabaseCollector())
        return Response(render_metrics(registry), mimetype=CONTENT_TYPE_LATEST)
