"""Claiming and running jobs.

A job is claimed with an atomic conditional update (status ``queued`` and due →
``running`` with a lease); a worker that dies leaves a lease that expires,
after which another worker takes the job again.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from datetime import timedelta

from sqlalchemy import or_, select, update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.models import Job, JobStatus
from portal.jobs.queue import HANDLERS, RetryLater

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BACKOFF = [timedelta(seconds=s) for s in (5, 30, 120, 600, 3600)]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_one(worker: str) -> Job | None:
    """Claim the next due job, or None. Commits the claim."""
    now = utcnow()
    candidates = db.session.scalars(
        select(Job.id)
        .where(
            or_(
                (Job.status == JobStatus.QUEUED) & (Job.run_at <= now),
                (Job.status == JobStatus.RUNNING) & (Job.locked_until < now),
            )
        )
        .order_by(Job.run_at, Job.id)
        .limit(10)
    ).all()
    for job_id in candidates:
        result = db.session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                or_(
                    Job.status == JobStatus.QUEUED,
                    (Job.status == JobStatus.RUNNING) & (Job.locked_until < now),
                ),
            )
            .values(
                status=JobStatus.RUNNING,
                locked_by=worker,
                locked_until=now + LEASE,
                attempts=Job.attempts + 1,
            )
        )
        db.session.commit()
        if result.rowcount == 1:
            return db.session.get(Job, job_id)
    return None


def run_job(job: Job) -> None:
    """Run one claimed job and record its outcome (commits)."""
    handler = HANDLERS.get(job.kind)
    job_id = job.id
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {job.kind!r}")
        handler(dict(job.payload))
    except Exception as exc:  # a failing job must never kill the worker
        db.session.rollback()
        job = db.session.get(Job, job_id)
        delay = exc.delay if isinstance(exc, RetryLater) else None
        job.last_error = "".join(traceback.format_exception_only(exc)).strip()[:2000]
        job.locked_by = None
        job.locked_until = None
        if job.attempts >= job.max_attempts:
            job.status = JobStatus.FAILED
            job.finished_at = utcnow()
            log.error("job %s (%s) failed for good: %s", job.id, job.kind, job.last_error)
        else:
            job.status = JobStatus.QUEUED
            job.run_at = utcnow() + (delay or BACKOFF[min(job.attempts - 1, len(BACKOFF) - 1)])
            log.warning("job %s (%s) will be retried: %s", job.id, job.kind, job.last_error)
        db.session.commit()
        return
    job = db.session.get(Job, job_id)
    job.status = JobStatus.DONE
    job.finished_at = utcnow()
    job.locked_by = None
    job.locked_until = None
    db.session.commit()


def run_due_jobs(limit: int = 1000, worker: str | None = None) -> int:
    """Run due jobs until none is left (or ``limit``); returns how many ran."""
    worker = worker or worker_name()
    count = 0
    while count < limit:
        job = claim_one(worker)
        if job is None:
            break
        run_job(job)
        count += 1
    return count
