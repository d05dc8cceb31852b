"""Running jobs: the worker process (``flask --app portal worker``).

Jobs are claimed with a lease (:mod:`portal.jobs.claims`): a worker that dies
leaves a lease that expires, and another worker takes the job again. Jobs that
share a ``queue_key`` (one merchant's callback endpoint) run at most
``PER_KEY_LIMIT`` at a time over all workers, and never take a worker's last
free thread, so a slow endpoint holds a few threads, never the whole worker.
SIGTERM stops claiming and lets the jobs in hand finish.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Collection
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.claims import PER_KEY_LIMIT, Claimed, claim, claim_jobs
from portal.jobs.models import Job
from portal.jobs.periodic import run_periodic, start_duties
from portal.jobs.queue import HANDLERS, RetryLater
from portal.states import JobStatus

log = logging.getLogger(__name__)

__all__ = [
    "PER_KEY_LIMIT",
    "Claimed",
    "Worker",
    "claim",
    "claim_jobs",
    "run_due_jobs",
    "run_periodic",
]

BACKOFF = [timedelta(seconds=s) for s in (5, 30, 120, 600, 3600)]
RECOVER_EVERY = 1.0  # seconds between two lease recoveries of one worker


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10000}"


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
        # The job is the boundary: the handler's work is committed here, before the job
        # is marked done (if this fails the job runs again; marking it done is idempotent).
        db.session.commit()
    except RetryLater as retry:
        # A retry is an outcome, not a failure of the run: what the handler recorded of
        # this attempt (a callback's answer, a send's error) is kept.
        db.session.commit()
        return retry
    except Exception as exc:
        db.session.rollback()
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


class Worker:
    """A claiming loop feeding a small thread pool, with the periodic duties in threads
    of their own (:mod:`portal.jobs.periodic`); stops gracefully on SIGTERM."""

    def __init__(self, app: Flask, *, threads: int | None = None, poll: float = 0.2) -> None:
        self.app = app
        self.threads = threads or app.config["PORTAL_WORKER_THREADS"]
        self.poll = poll
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self._recovered = 0.0  # when this worker last recovered expired leases (monotonic)
        self._after = ""  # the lane of the last job claimed: the round robin goes on from it

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
        duties = threading.Event()
        start_duties(self.app, duties)
        try:
            self._claim_and_run(exit_when_idle)
        finally:
            duties.set()

    def _claim(self, free: int, in_hand: Collection[Claimed]) -> list[Claimed]:
        recover = time.monotonic() - self._recovered >= RECOVER_EVERY
        if recover:
            self._recovered = time.monotonic()
        jobs = claim_jobs(
            self.name,
            free,
            exclude=[job.id for job in in_hand],
            held=Counter(job.lane for job in in_hand),
            after=self._after,
            recover=recover,
        )
        if jobs:
            self._after = jobs[-1].lane
        return jobs

    def _claim_and_run(self, exit_when_idle: bool) -> None:
        in_flight: dict[Future[None], Claimed] = {}  # the jobs in hand, by their runs
        outage = 0.0
        with ThreadPoolExecutor(self.threads, thread_name_prefix="job") as pool:
            while not self.stopping.is_set():
                in_flight = {f: job for f, job in in_flight.items() if not f.done()}
                free = self.threads - len(in_flight)
                jobs: list[Claimed] = []
                with self.app.app_context():
                    try:
                        if free > 0:
                            jobs = self._claim(free, in_flight.values())
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
                    in_flight[pool.submit(self._run_one, job)] = job
                if exit_when_idle and not jobs and not in_flight:
                    break
                if in_flight:
                    # Claim again as soon as a job ends (its thread, or room in its queue),
                    # not a poll later.
                    wait(in_flight, timeout=self.poll, return_when=FIRST_COMPLETED)
                else:
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
