"""Durable jobs: emails, SMS, callbacks, expiry — written in the same transaction
as the change that causes them, run by the worker after commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import Model
from portal.states import JobStatus


def _partial(name: str, *columns: str, status: str) -> Index:
    """An index over the jobs of one status (a partial index, the same on both engines)."""
    predicate = text(f"status = '{status}'")
    return Index(name, *columns, sqlite_where=predicate, postgresql_where=predicate)


class Job(Model):
    """A unit of work. Finished jobs stay for a week (support looks at them), so every
    index the worker reads is partial: the claim never walks past done rows."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Each queue's jobs in due order, the unkeyed ones (queue_key NULL) apart: the
        # claim and /readyz read the head of every queue from here. No index on run_at
        # alone: PostgreSQL's planner would prefer it for a queue's head and filter
        # through every other queue's jobs.
        _partial("ix_jobs_queued_lane", "queue_key", "run_at", "id", status=JobStatus.QUEUED),
        # Jobs in flight: leases to recover and the count per queue key.
        _partial("ix_jobs_running_locked_until", "locked_until", status=JobStatus.RUNNING),
        # The week-old finished jobs that the clean-up forgets.
        _partial("ix_jobs_done_finished_at", "finished_at", status=JobStatus.DONE),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)
    # Jobs sharing a queue key (e.g. one callback endpoint) never block other keys.
    queue_key: Mapped[str | None] = mapped_column(String(80))
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The table itself, for the claim's and the worker's Core statements (built once each).
jobs_table = cast(Table, Job.__table__)
