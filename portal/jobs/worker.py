"""Claiming and running jobs: the worker process (``flask --app portal worker``).

Jobs are claimed atomically with a lease: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a conditional UPDATE on SQLite. A worker that dies leaves a lease
that expires, and another worker takes the job again. Jobs that share a
``queue_key`` (one merchant's callback endpoint) run at most
``PER_KEY_LIMIT`` at a time, so a slow endpoint holds a few threads, never
the whole worker. SIGTERM stops claiming and lets the jobs in hand finish.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Collection
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.models import Job, JobStatus
from portal.jobs.queue import HANDLERS, RetryLater

log = logging.getLogger(__name__)

BACKOFF = [timedelta(seconds=s) for s in (5, 30, 120, 600, 3600)]
PER_KEY_LIMIT = 4
KEEP_DONE = timedelta(days=7)
PERIODIC_EVERY = 60.0
CLEANUP_BATCH = 5000  # finished jobs forgotten per statement
CLEANUP_BATCHES = 20  # statements per periodic run (100,000 jobs a minute at most)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10000}"


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config["PORTAL_JOB_LEASE_SECONDS"])


def _due(now):
    busy_keys = (
        select(Job.queue_key)
        .where(Job.status == JobStatus.RUNNING, Job.locked_until >= now, Job.queue_key.is_not(None))
        .group_by(Job.queue_key)
        .having(func.count() >= PER_KEY_LIMIT)
    )
    return (
        or_(
            (Job.status == JobStatus.QUEUED) & (Job.run_at <= now),
            (Job.status == JobStatus.RUNNING) & (Job.locked_until < now),
        )
    ) & (Job.queue_key.is_(None) | Job.queue_key.not_in(busy_keys))


@dataclass(frozen=True)
class Claimed:
    """A job as claimed: all a runner needs, so it never reads the job again."""

    id: int
    kind: str
    payload: dict[str, Any]
    worker: str


def claim(worker: str, limit: int = 1, *, exclude: Collection[int] = ()) -> list[int]:
    """Claim up to ``limit`` due jobs for ``worker``; commits and returns their ids."""
    return [job.id for job in claim_jobs(worker, limit, exclude=exclude)]


def claim_jobs(worker: str, limit: int = 1, *, exclude: Collection[int] = ()) -> list[Claimed]:
    """Claim up to ``limit`` due jobs for ``worker``; commits and returns them.

    ``exclude``: jobs the caller still holds (their lease may have run out while it
    waits to record their outcome); they are never claimed a second time.
    """
    now = utcnow()
    due = _due(now)
    if exclude:
        due = due & Job.id.not_in(list(exclude))
    values = {
        "status": JobStatus.RUNNING,
        "locked_by": worker,
        "locked_until": now + _lease(),
        "attempts": Job.attempts + 1,
    }
    if db.engine.dialect.name == "postgresql":
        picked = (
            select(Job.id)
            .where(due)
            .order_by(Job.run_at, Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        rows = db.session.execute(
            update(Job)
            .where(Job.id.in_(picked))
            .values(**values)
            .returning(Job.id, Job.kind, Job.payload)
        ).all()
        db.session.commit()
        return [Claimed(job_id, kind, dict(payload), worker) for job_id, kind, payload in rows]
    claimed: list[int] = []
    candidates = db.session.scalars(
        select(Job.id).where(due).order_by(Job.run_at, Job.id).limit(limit * 3)
    ).all()
    for job_id in candidates:
        result = db.session.execute(update(Job).where(Job.id == job_id, due).values(**values))
        db.session.commit()
        if result.rowcount == 1:
            claimed.append(job_id)
            if len(claimed) >= limit:
                break
    if not claimed:
        return []
    rows = db.session.execute(
        select(Job.id, Job.kind, Job.payload).where(Job.id.in_(claimed)).order_by(Job.id)
    ).all()
    db.session.commit()
    return [Claimed(job_id, kind, dict(payload), worker) for job_id, kind, payload in rows]


def run_job(job: Claimed) -> None:
    """Run one claimed job and record its outcome (commits)."""
    finish_job(job.id, job.worker, execute_job(job.kind, dict(job.payload)))


def execute_job(kind: str, payload: dict[str, Any]) -> Exception | None:
    """Run a claimed job's handler and commit what it left pending; returns what it raised
    (a failing job must never kill the worker). Records nothing: see :func:`finish_job`."""
    handler = HANDLERS.get(kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {kind!r}")
        handler(payload)
        # The handler's work is committed on its own, before the job is marked done: if
        # this fails the job runs again, and marking it done may be retried safely.
        db.session.commit()
    except Exception as exc:
        return exc
    return None


def finish_job(job_id: int, worker: str | None, error: Exception | None) -> None:
    """Record the outcome of ``worker``'s run of a job (commits): done, or failed and retried
    later (dead-lettered after its last attempt). Nothing is written once another worker
    holds the job. Idempotent, so it may be called again when the database failed."""
    if error is None:
        db.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.locked_by == worker)
            .values(status=JobStatus.DONE, finished_at=utcnow(), locked_by=None, locked_until=None)
        )
        db.session.commit()
        return
    db.session.rollback()
    job = db.session.get(Job, job_id)
    if job is None or job.locked_by != worker:
        return  # our lease expired and another worker took it
    delay = error.delay if isinstance(error, RetryLater) else None
    job.last_error = "".join(traceback.format_exception_only(error)).strip()[:2000]
    job.locked_by = None
    job.locked_until = None
    if job.attempts >= job.max_attempts:
        job.status = JobStatus.FAILED
        job.finished_at = utcnow()
        log.error("job %s (%s) failed for good: %s", job.id, job.kind, job.last_error)
    else:
        job.status = JobStatus.QUEUED
        job.run_at = utcnow() + (delay or BACKOFF[min(job.attempts - 1, len(BACKOFF) - 1)])
        if not isinstance(error, RetryLater):
            log.warning("job %s (%s) will be retried: %s", job.id, job.kind, job.last_error)
    db.session.commit()


def run_due_jobs(limit: int = 1000, worker: str | None = None) -> int:
    """Run due jobs in this thread until none is left (or ``limit``); returns how many ran."""
    worker = worker or worker_name()
    count = 0
    while count < limit:
        claimed = claim_jobs(worker, 1)
        if not claimed:
            break
        run_job(claimed[0])
        count += 1
    return count


def run_periodic() -> None:
    """Expire overdue links, reconcile stuck payments with the provider, forget old
    finished jobs (safe on many workers at once)."""
    from portal.payment_requests.services import expire_overdue
    from portal.payments.services import reconcile_stuck_payments

    expired = expire_overdue()
    if expired:
        log.info("expired %s payment requests", expired)
    checked = reconcile_stuck_payments()
    if checked:
        log.info("asked the provider about %s stuck payment(s)", checked)
    cutoff = utcnow() - KEEP_DONE
    # In batches: a week's backlog in one statement could outlast the statement timeout.
    old = (
        select(Job.id)
        .where(Job.status == JobStatus.DONE, Job.finished_at < cutoff)
        .limit(CLEANUP_BATCH)
        .scalar_subquery()
    )
    for _ in range(CLEANUP_BATCHES):
        deleted = db.session.execute(delete(Job).where(Job.id.in_(old))).rowcount
        db.session.commit()
        if deleted < CLEANUP_BATCH:
            break


class Worker:
    """A claiming loop feeding a small thread pool; stops gracefully on SIGTERM."""

    def __init__(self, app: Flask, *, threads: int | None = None, poll: float = 0.2) -> None:
        self.app = app
        self.threads = threads or app.config["PORTAL_WORKER_THREADS"]
        self.poll = poll
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self._last_periodic = 0.0

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _run_one(self, job: Claimed) -> None:
        # The claim returned the job's kind and payload: the handler starts on a fresh
        # transaction, with no read of the job before it.
        with self.app.app_context():
            try:
                self._record(job.id, job.worker, execute_job(job.kind, dict(job.payload)))
            except (OperationalError, InterfaceError) as exc:
                log.warning(
                    "database unavailable around job %s (%s); it runs after its lease",
                    job.id,
                    type(exc).__name__,
                )
            except Exception:
                log.exception("job %s crashed the runner", job.id)
            finally:
                db.session.remove()

    def _record(self, job_id: int, worker: str | None, error: Exception | None) -> None:
        """Record a run's outcome, waiting out a database outage: a job that ran is not run
        again, and a failure is not forgotten, only because the database was away. The
        job stays out of :func:`claim` meanwhile (it is in hand), even past its lease."""
        delay = 0.5
        while True:
            try:
                finish_job(job_id, worker, error)
                return
            except (OperationalError, InterfaceError) as exc:
                db.session.remove()
                if self.stopping.is_set():
                    log.error(
                        "job %s: outcome not recorded (%s) and the worker is stopping; "
                        "it runs again after its lease",
                        job_id,
                        type(exc).__name__,
                    )
                    return
                log.warning(
                    "job %s: database unavailable (%s); recording its outcome in %.1fs",
                    job_id,
                    type(exc).__name__,
                    delay,
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def run(self, *, exit_when_idle: bool = False) -> None:
        in_flight: dict[Future[None], int] = {}  # the jobs in hand, by their runs
        outage = 0.0
        with ThreadPoolExecutor(self.threads, thread_name_prefix="job") as pool:
            while not self.stopping.is_set():
                in_flight = {f: job_id for f, job_id in in_flight.items() if not f.done()}
                free = self.threads - len(in_flight)
                jobs: list[Claimed] = []
                with self.app.app_context():
                    try:
                        if time.monotonic() - self._last_periodic > PERIODIC_EVERY:
                            self._last_periodic = time.monotonic()
                            run_periodic()
                        if free > 0:
                            jobs = claim_jobs(self.name, free, exclude=in_flight.values())
                    except (OperationalError, InterfaceError) as exc:
                        # The database is down or restarting: wait longer each time (up to
                        # 10 s), then carry on; jobs in hand keep their lease.
                        outage = min(outage * 2 or 0.5, 10.0)
                        log.warning("database unavailable (%s); retrying in %.1fs",
                                    type(exc).__name__, outage)  # fmt: skip
                        self.stopping.wait(outage)
                        continue
                    except Exception:
                        log.exception("claiming jobs failed; retrying")
                        self.stopping.wait(1)
                    finally:
                        db.session.remove()
                outage = 0.0
                for job in jobs:
                    in_flight[pool.submit(self._run_one, job)] = job.id
                if free <= 0:
                    # Every thread is busy: claim again as soon as one is free, not a poll later.
                    wait(in_flight, timeout=self.poll, return_when=FIRST_COMPLETED)
                elif not jobs:
                    if exit_when_idle and not in_flight:
                        break
                    self.stopping.wait(self.poll)
            log.info("worker %s stopping; finishing %s job(s) in hand", self.name, len(in_flight))


def start_embedded(app: Flask) -> threading.Thread:
    """A daemon worker thread inside the web process (``make run``: one command)."""
    worker = Worker(app, threads=2, poll=0.5)
    thread = threading.Thread(target=worker.run, name="embedded-worker", daemon=True)
    thread.start()
    log.info("embedded worker started")
    return thread


def start_embedded_on_first_request(app: Flask) -> None:
    """Start the embedded worker with the web server's first request, never in CLI commands."""
    started = threading.Lock()

    @app.before_request
    def _start_worker() -> None:
        if "embedded_worker" not in app.extensions and started.acquire(blocking=False):
            app.extensions["embedded_worker"] = start_embedded(app)
