"""A job's success is committed with its work (issue 18): one commit per job, not two,
and never the one without the other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select, text

from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.queue import enqueue, job_handler
from portal.jobs.worker import claim_jobs, run_job
from portal.states import JobStatus

WRITTEN: list[int] = []


@job_handler("outcome_writes")
def _writes(payload: dict) -> None:
    db.session.execute(text("SELECT 1"))  # the database is used: the job is in its commit
    if payload.get("fail_commit"):
        # A row the database refuses (a taken id): the work fails to commit.
        taken = db.session.scalar(select(func.min(Job.id)))
        db.session.add(Job(id=taken, kind="x", payload={}))
    WRITTEN.append(payload["n"])


@job_handler("outcome_outside")
def _outside(payload: dict) -> None:
    WRITTEN.append(payload["n"])  # an effect outside the database (a send)


@pytest.fixture
def commits(app) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = db.engine

    def note(conn) -> None:
        seen.append("commit")

    event.listen(engine, "commit", note)
    WRITTEN.clear()
    yield seen
    event.remove(engine, "commit", note)


def _claim_one(kind: str, payload: dict):
    enqueue(kind, payload)
    db.session.commit()
    [job] = claim_jobs("host:1", 1)
    db.session.remove()
    return job


def _status(job_id: int) -> str:
    db.session.remove()
    return db.session.scalar(select(Job.status).where(Job.id == job_id))


def test_a_job_that_used_the_database_is_done_in_its_own_commit(app, commits):
    job = _claim_one("outcome_writes", {"n": 1})
    commits.clear()
    run_job(job)
    assert commits == ["commit"]
    assert _status(job.id) == JobStatus.DONE and WRITTEN == [1]


def test_a_job_whose_work_fails_to_commit_is_not_done(app, commits):
    job = _claim_one("outcome_writes", {"n": 2, "fail_commit": True})
    run_job(job)
    db.session.remove()
    stored = db.session.get(Job, job.id)
    assert stored.status == JobStatus.QUEUED and stored.attempts == 1  # retried later
    assert "IntegrityError" in stored.last_error
    assert db.session.scalar(select(func.count(Job.id))) == 1  # nothing of its work kept


def test_a_job_outside_the_database_is_marked_done_on_its_own(app, commits):
    job = _claim_one("outcome_outside", {"n": 3})
    commits.clear()
    run_job(job)
    assert commits == ["commit"]  # the handler left nothing to commit
    assert _status(job.id) == JobStatus.DONE and WRITTEN == [3]
