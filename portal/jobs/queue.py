"""The job queue's public face: enqueue inside the caller's transaction, register handlers.

``enqueue`` only adds a row to the session: the job exists if and only if the
transaction that asked for it commits (the transactional outbox). The worker
(:mod:`portal.jobs.worker`) claims and runs jobs after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.wakeup import mark_due

Handler = Callable[[dict[str, Any]], None]
# Customer emails outlive a long mail outage: the backoff caps at an hour, so 30
# attempts keep a receipt trying for about a day before it is dead-lettered.
MAIL_ATTEMPTS = 30
HANDLERS: dict[str, Handler] = {}


class RetryLater(Exception):
    """Raised by a handler to be retried at a given time (e.g. ``Retry-After``)."""

    def __init__(self, message: str, delay: timedelta | None = None) -> None:
        super().__init__(message)
        self.delay = delay


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register ``func`` as the handler of jobs of ``kind``."""

    def register(func: Handler) -> Handler:
        HANDLERS[kind] = func
        return func

    return register


def enqueue(
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    queue_key: str | None = None,
    max_attempts: int = 5,
) -> Job:
    """Add a job to the current transaction; it runs only if that transaction commits
    (and wakes an idle worker then, when it is due: :mod:`portal.jobs.wakeup`)."""
    now = utcnow()
    job = Job(
        kind=kind,
        payload=payload,
        run_at=run_at or now,
        queue_key=queue_key,
        max_attempts=max_attempts,
    )
    db.session.add(job)
    if run_at is None or run_at <= now:
        mark_due(db.session())
    return job
