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
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import bindparam, update
from sqlalchemy.exc import InterfaceError, OperationalError

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.claims import PER_KEY_LIMIT, Claimed, claim, claim_jobs
from portal.jobs.models import Job, jobs_table
from portal.jobs.periodic import run_periodic, start_duties
from portal.jobs.queue import HANDLERS, RetryLater
from portal.jobs.wakeup import Wakeup, listen_url
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


class Done:
    """What :func:`execute_job` returns when the job's success was committed with its work."""


DONE = Done()


def run_job(job: Claimed) -> None:
    """Run one claimed job and record its outcome (commits)."""
    outcome = execute_job(job.kind, dict(job.payload), job)
    if not isinstance(outcome, Done):
        finish_job(job.id, job.worker, outcome)


def execute_job(
    kind: str, payload: dict[str, Any], job: Claimed | None = None
) -> Exception | Done | None:
    """Run a claimed job's handler and commit what it left pending; returns what it raised
    (a failing job must never kill the worker), or :data:`DONE` when ``job`` was marked
    done in the same commit as the handler's work. Records nothing else: see
    :func:`finish_job`."""
    handler = HANDLERS.get(kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {kind!r}")
        handler(payload)
        # The job is the boundary. A handler that used the database has its work and the
        # job's success committed together, in one commit: if that fails, neither is
        # kept and the job is retried, as when its work alone failed to commit. One that
        # did not (its effect is outside: nothing to lose) is marked done on its own,
        # by finish_job, which waits out a database outage instead of running it again.
        if job is not None and db.session().in_transaction():
            _mark_done(job.id, job.worker)
            db.session.commit()
            return DONE
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
        _mark_done(job_id, worker)
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


def _done_statement(held: Any) -> Any:
    return (
        update(jobs_table)
        .where(jobs_table.c.id == bindparam("job_id"), held)
        .values(
            status=JobStatus.DONE.value, finished_at=bindparam("now"), locked_by=None,
            locked_until=None,
        )
    )  # fmt: skip


# Core statements built once (every job ends with one): the ORM's bulk UPDATE costs more
# than its round trip, and there is no Job object to keep in step.
_DONE_BY_WORKER = _done_statement(jobs_table.c.locked_by == bindparam("worker"))
_DONE_UNCLAIMED = _done_statement(jobs_table.c.locked_by.is_(None))


def _mark_done(job_id: int, worker: str | None) -> None:
    """Done, unless another worker holds the job now (no commit). What the job's handler
    left pending is flushed first, as the ORM statement's autoflush did."""
    db.session.flush()
    statement = _DONE_UNCLAIMED if worker is None else _DONE_BY_WORKER
    db.session.execute(statement, {"job_id": job_id, "worker": worker, "now": utcnow()})


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
        # The longest an idle worker waits before it looks again; on PostgreSQL a committed
        # job wakes it at once (LISTEN/NOTIFY), so the poll only bounds a missed wake-up.
        self.poll = poll
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.wakeup = Wakeup(self.stopping)
        self._recovered = 0.0  # when this worker last recovered expired leases (monotonic)
        self._after = ""  # the lane of the last job claimed: the round robin goes on from it

    def stop(self, *_: object) -> None:
        self.stopping.set()
        self.wakeup.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _run_one(self, job: Claimed) -> None:
        # The claim returned the job's kind and payload: the handler starts on a fresh
        # transaction, with no read of the job before it.
        with self.app.app_context():
            try:
                outcome = execute_job(job.kind, dict(job.payload), job)
                if not isinstance(outcome, Done):
                    self._record(job.id, job.worker, outcome)
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
        self.wakeup.start_listening(listen_url(self.app))
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
                    future = pool.submit(self._run_one, job)
                    # Claim again as soon as a job ends (its thread, or room in its
                    # queue), not a poll later.
                    future.add_done_callback(self.wakeup.set)
                    in_flight[future] = job
                if exit_when_idle and not jobs and not in_flight:
                    break
                # Until a job in hand ends, one is committed (NOTIFY) or the poll runs out.
                self.wakeup.wait(self.poll)
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
