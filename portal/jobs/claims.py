"""Claiming due jobs: cheap whatever the table holds, fair between queues.

A queue is a ``queue_key`` (one merchant's callback endpoint). Jobs without one
(mails, SMS) are claimed beside the queues, in due order. Each claim

1. recovers the leases that ran out, in a statement of its own on the partial index
   of running jobs (a worker died, or lost the database for longer than its lease);
2. reads the head of every queue that has due jobs. On PostgreSQL that is a skip scan
   over the partial index of queued jobs: one probe per queue, so a claim costs the
   same with 2,000 or 100,000 jobs due, never sorts what is due and never reads a
   finished job;
3. hands out the free threads fairly: the queue with the fewest jobs in flight first,
   and the oldest job first among equals. No queue has more than :data:`PER_KEY_LIMIT`
   jobs in flight, counted over every worker. A queue that already runs a job in this
   worker never takes its last free thread: that one waits for a queue that has none
   here, so a hanging ledger cannot take a whole worker;
4. marks the jobs running, with a lease, and commits.

Counting what is in flight must not race another worker's claim. On PostgreSQL every
claim takes one transaction-level advisory lock before it counts and keeps it until it
commits: claims run one at a time, a few milliseconds each, while the jobs themselves
run outside the lock. The rows are taken ``FOR UPDATE SKIP LOCKED``, so a job row that
anyone else holds is passed over, never waited for with the lock held. On SQLite (one
writer at a time) each job is taken by a conditional UPDATE that counts its queue in the
same statement.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, func, or_, select, text, update
from sqlalchemy.orm import aliased

from portal.db_types import UTCDateTime, utcnow
from portal.extensions import db, execute_count
from portal.jobs.models import Job, jobs_table
from portal.states import JobStatus

log = logging.getLogger(__name__)

PER_KEY_LIMIT = 4
# The advisory lock every claim holds on PostgreSQL (any constant no other code uses).
CLAIM_LOCK = 0x6A6F6273


@dataclass(frozen=True)
class Claimed:
    """A job as claimed: all a runner needs, so it never reads the job again."""

    id: int
    kind: str
    payload: dict[str, Any]
    worker: str
    queue_key: str | None = None

    @property
    def lane(self) -> str:
        return lane(self.queue_key, self.kind)


@dataclass(frozen=True)
class Candidate:
    """A due job at the head of its lane; ``load``: its lane's jobs in flight with it."""

    id: int
    lane: str
    load: int


def lane(queue_key: str | None, kind: str) -> str:
    """What a job shares threads with: its queue, or its kind for jobs without one (as
    ``coalesce(queue_key, 'kind:' || kind)`` in the claim's SQL)."""
    return queue_key or f"kind:{kind}"


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config["PORTAL_JOB_LEASE_SECONDS"])


def _postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


def claim(worker: str, limit: int = 1, *, exclude: Collection[int] = ()) -> list[int]:
    """Claim up to ``limit`` due jobs for ``worker``; commits and returns their ids."""
    return [job.id for job in claim_jobs(worker, limit, exclude=exclude)]


def claim_jobs(
    worker: str,
    limit: int = 1,
    *,
    exclude: Collection[int] = (),
    held: Mapping[str, int] | None = None,
    after: str = "",
    recover: bool = True,
) -> list[Claimed]:
    """Claim up to ``limit`` due jobs for ``worker`` (its free threads); commits.

    ``exclude``: jobs the caller still holds (their lease may have run out while it
    waits to record their outcome); they are never claimed a second time. ``held``: the
    caller's jobs in hand per lane (see :func:`lane`), for the last-thread rule.
    ``after``: the lane of the caller's last claimed job. Among lanes equally loaded,
    those after it come first, then the round starts again: every lane gets its turn,
    whoever has the oldest backlog. ``recover``: recover expired leases first (a busy
    worker does it once a second, not once a claim).
    """
    if recover:
        recover_leases(utcnow(), exclude)
    if _postgresql():
        db.session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
    now = utcnow()
    candidates = _candidates(now, limit, exclude, after)
    picked = pick(candidates, limit, held or {})
    claimed = _take(picked, worker, now) if picked else []
    db.session.commit()
    return claimed


def recover_leases(now: datetime, exclude: Collection[int] = ()) -> int:
    """Queue again the running jobs whose lease ran out (not ``exclude``, still in hand)."""
    expired = select(Job.id).where(Job.status == JobStatus.RUNNING, Job.locked_until < now)
    if exclude:
        expired = expired.where(Job.id.not_in(list(exclude)))
    if _postgresql():
        expired = expired.with_for_update(skip_locked=True)
    recovered = execute_count(
        update(Job)
        .where(Job.id.in_(expired.scalar_subquery()))
        .values(status=JobStatus.QUEUED, locked_by=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    if recovered:
        log.warning("%s job(s) outlived their lease; queued again", recovered)
    return recovered


def pick(candidates: list[Candidate], limit: int, held: Mapping[str, int]) -> list[Candidate]:
    """The first ``limit`` candidates (they come fairest first), except that a lane with a
    job in hand here never takes the last free thread."""
    picked: list[Candidate] = []
    taken: dict[str, int] = {}
    for candidate in candidates:
        if len(picked) == limit:
            break
        in_hand = held.get(candidate.lane, 0) + taken.get(candidate.lane, 0)
        if in_hand and len(picked) == limit - 1:
            continue
        picked.append(candidate)
        taken[candidate.lane] = taken.get(candidate.lane, 0) + 1
    return picked


# Every queue key with a due job: a walk over the distinct keys of ix_jobs_queued_lane,
# one index probe per key (PostgreSQL has no skip scan of its own before version 18).
_QUEUES = """
WITH RECURSIVE queues(queue_key) AS (
    SELECT min(queue_key) FROM jobs
     WHERE status = 'queued' AND queue_key IS NOT NULL AND run_at <= :now
    UNION ALL
    SELECT (SELECT min(later.queue_key) FROM jobs AS later
             WHERE later.status = 'queued' AND later.queue_key > queues.queue_key
               AND later.run_at <= :now)
      FROM queues WHERE queues.queue_key IS NOT NULL
)"""

# The first due jobs of every queue, and of every kind of unkeyed job, fairest first: the
# least loaded lane, then round robin from the lane after `after`. Each queue's head is
# read in the index's own order (queue_key, run_at, id), so the planner walks the index
# instead of sorting. `load` counts the lane's jobs in flight, this one included: a
# queue at PER_KEY_LIMIT offers nothing.
_HEADS = text(
    _QUEUES  # noqa: S608 - constants only, every value is a bound parameter
    + """,
in_flight AS (
    SELECT queue_key, count(*) AS n FROM jobs
     WHERE status = 'running' AND queue_key IS NOT NULL
     GROUP BY queue_key
),
heads AS (
    SELECT head.id, head.queue_key AS lane, true AS capped, head.run_at,
           coalesce(in_flight.n, 0)
             + row_number() OVER (PARTITION BY head.queue_key ORDER BY head.run_at, head.id)
             AS load
      FROM queues
      LEFT JOIN in_flight ON in_flight.queue_key = queues.queue_key
      CROSS JOIN LATERAL (
          SELECT id, queue_key, run_at FROM jobs
           WHERE status = 'queued' AND queue_key = queues.queue_key
             AND id <> ALL(CAST(:exclude AS bigint[]))
           ORDER BY queue_key, run_at, id
           LIMIT :per_queue
      ) AS head
     WHERE head.run_at <= :now
    UNION ALL
    SELECT id, 'kind:' || kind, false, run_at,
           row_number() OVER (PARTITION BY kind ORDER BY run_at, id)
      FROM (SELECT id, kind, run_at FROM jobs
             WHERE status = 'queued' AND queue_key IS NULL AND run_at <= :now
               AND id <> ALL(CAST(:exclude AS bigint[]))
             ORDER BY queue_key, run_at, id
             LIMIT :limit) AS unkeyed
)
SELECT id, lane, load FROM heads
 WHERE NOT capped OR load <= :per_key_limit
 ORDER BY load, lane <= :after, lane, run_at, id
 LIMIT :fetch
"""
).bindparams(bindparam("now", type_=UTCDateTime))

# When the oldest due job became due: the oldest of the queues' heads and the unkeyed head.
_OLDEST_DUE = (
    text(
        _QUEUES  # noqa: S608 - constants only, every value is a bound parameter
        + """
SELECT min(first_due) AS first_due FROM (
    SELECT (SELECT run_at FROM jobs
             WHERE status = 'queued' AND queue_key = queues.queue_key
             ORDER BY queue_key, run_at LIMIT 1) AS first_due
      FROM queues
    UNION ALL
    SELECT (SELECT run_at FROM jobs
             WHERE status = 'queued' AND queue_key IS NULL AND run_at <= :now
             ORDER BY queue_key, run_at LIMIT 1)
) AS firsts
"""
    )
    .bindparams(bindparam("now", type_=UTCDateTime))
    .columns(first_due=UTCDateTime)
)


def oldest_due_at(now: datetime) -> datetime | None:
    """When the job that has waited longest became due (None: nothing is due)."""
    if _postgresql():
        return db.session.execute(_OLDEST_DUE, {"now": now}).scalar()
    return db.session.execute(
        select(func.min(Job.run_at)).where(Job.status == JobStatus.QUEUED, Job.run_at <= now)
    ).scalar()


def _candidates(now: datetime, limit: int, exclude: Collection[int], after: str) -> list[Candidate]:
    # A few more than the free threads, for the last-thread rule of :func:`pick`.
    fetch = 3 * limit
    if _postgresql():
        rows = db.session.execute(
            _HEADS,
            {
                "now": now,
                "exclude": list(exclude),
                "per_queue": min(limit, PER_KEY_LIMIT),
                "per_key_limit": PER_KEY_LIMIT,
                "limit": limit,
                "after": after,
                "fetch": fetch,
            },
        ).all()
    else:
        rows = db.session.execute(_ranked_due(now, exclude, after, fetch)).all()
    return [Candidate(job_id, lane, load) for job_id, lane, load in rows]


def _ranked_due(now: datetime, exclude: Collection[int], after: str, fetch: int) -> Select[Any]:
    """SQLite's version of ``_HEADS``: it ranks every due job per lane with a window
    function (a sort over what is due; the embedded default never holds a large queue)."""
    job_lane = func.coalesce(Job.queue_key, "kind:" + Job.kind)
    due = select(
        Job.id,
        Job.queue_key,
        Job.run_at,
        job_lane.label("lane"),
        func.row_number().over(partition_by=job_lane, order_by=(Job.run_at, Job.id)).label("rank"),
    ).where(Job.status == JobStatus.QUEUED, Job.run_at <= now)
    if exclude:
        due = due.where(Job.id.not_in(list(exclude)))
    ranked = due.subquery()
    in_flight = _in_flight().subquery()
    load = func.coalesce(in_flight.c.n, 0) + ranked.c.rank
    return (
        select(ranked.c.id, ranked.c.lane, load)
        .select_from(ranked.outerjoin(in_flight, in_flight.c.queue_key == ranked.c.queue_key))
        .where(or_(ranked.c.queue_key.is_(None), load <= PER_KEY_LIMIT))
        .order_by(load, ranked.c.lane <= after, ranked.c.lane, ranked.c.run_at, ranked.c.id)
        .limit(fetch)
    )


def _in_flight() -> Select[str | None, int]:
    return (
        select(Job.queue_key, func.count().label("n"))
        .where(Job.status == JobStatus.RUNNING, Job.queue_key.is_not(None))
        .group_by(Job.queue_key)
    )


# PostgreSQL's claim of the picked jobs still queued, built once (every claim runs it): an
# ORM UPDATE built at each claim costs more than its round trip.
_TAKE = (
    update(jobs_table)
    .where(
        jobs_table.c.id.in_(
            select(jobs_table.c.id)
            .where(
                jobs_table.c.id.in_(bindparam("ids", expanding=True)),
                jobs_table.c.status == JobStatus.QUEUED.value,
            )
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(
        status=JobStatus.RUNNING.value,
        locked_by=bindparam("worker"),
        locked_until=bindparam("until"),
        attempts=jobs_table.c.attempts + 1,
    )
    .returning(jobs_table.c.id, jobs_table.c.kind, jobs_table.c.payload, jobs_table.c.queue_key)
)


def _take(picked: list[Candidate], worker: str, now: datetime) -> list[Claimed]:
    """Mark the picked jobs running for ``worker`` and return them (no commit)."""
    values = {
        "status": JobStatus.RUNNING,
        "locked_by": worker,
        "locked_until": now + _lease(),
        "attempts": Job.attempts + 1,
    }
    ids = [candidate.id for candidate in picked]
    if _postgresql():
        rows = db.session.execute(
            _TAKE, {"ids": ids, "worker": worker, "until": values["locked_until"]}
        ).all()
    else:
        taken = [job_id for job_id in ids if _take_one(job_id, values)]
        rows = (
            db.session.execute(
                select(Job.id, Job.kind, Job.payload, Job.queue_key).where(Job.id.in_(taken))
            ).all()
            if taken
            else []
        )
    order = {job_id: n for n, job_id in enumerate(ids)}
    return sorted(
        (Claimed(job_id, kind, dict(payload), worker, key) for job_id, kind, payload, key in rows),
        key=lambda job: order[job.id],
    )


def _take_one(job_id: int, values: dict[str, Any]) -> bool:
    """SQLite: take one job if it is still queued and its queue still has room."""
    other = aliased(Job)
    in_flight = (
        select(func.count())
        .select_from(other)
        .where(other.status == JobStatus.RUNNING, other.queue_key == Job.queue_key)
        .scalar_subquery()
    )
    taken = execute_count(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.QUEUED,
            or_(Job.queue_key.is_(None), in_flight < PER_KEY_LIMIT),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return taken == 1
