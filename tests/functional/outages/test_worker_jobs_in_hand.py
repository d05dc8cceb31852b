"""The database going away while the worker holds a job: its outcome is recorded once the
database is back, so a job that ran is never run again and a failure is never lost."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text, update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.queue import enqueue, job_handler
from portal.jobs.worker import Worker, claim
from portal.states import JobStatus
from tests.conftest import _empty, make_app

LEASE = 2  # seconds: the outage outlasts it, as a long one outlasts the real 60 s

RAN: list[int] = []
STARTED = threading.Event()
RELEASE = threading.Event()


@job_handler("outage_in_hand")
def _in_hand(payload: dict) -> None:
    RAN.append(payload["n"])
    STARTED.set()
    RELEASE.wait(30)
    if payload.get("query_after"):
        db.session.execute(text("SELECT 1"))  # the database is gone by now: this fails


@pytest.fixture
def worker_app(cluster):
    app = make_app(cluster.url, job_lease_seconds=LEASE)
    with app.app_context():
        upgrade()
        db.session.remove()
    RAN.clear()
    STARTED.clear()
    RELEASE.clear()
    yield app
    RELEASE.set()
    _empty(app)


def _job(app, job_id: int) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        db.session.remove()
    return job


def _outage_while_in_hand(app, cluster, payload: dict, until) -> Job:
    """Enqueue one job, stop PostgreSQL while the worker runs it, let it finish during the
    outage, wait past its lease, start PostgreSQL and wait for ``until(job)``."""
    with app.app_context():
        job = enqueue("outage_in_hand", payload)
        db.session.commit()
        job_id = job.id
        db.session.remove()
    worker = Worker(app, threads=2, poll=0.1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert STARTED.wait(30), "the worker never started the job"
        cluster.stop("immediate")
        RELEASE.set()  # the job ends while nothing can record it
        time.sleep(LEASE + 1)  # its lease runs out during the outage
        assert thread.is_alive()
        cluster.start()
        deadline = time.monotonic() + 30
        while not until(job := _job(app, job_id)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    return job


def test_a_job_that_ran_during_the_outage_is_marked_done_and_not_run_again(cluster, worker_app):
    job = _outage_while_in_hand(worker_app, cluster, {"n": 1}, lambda j: j.status != "running")
    assert job.status == JobStatus.DONE
    # Done can only come from the run that ended during the outage, or from a second run
    # after the lease: one entry here tells them apart.
    assert RAN == [1]
    assert job.attempts == 1
    assert job.locked_by is None


def test_a_job_that_failed_during_the_outage_has_its_failure_recorded(cluster, worker_app):
    job = _outage_while_in_hand(
        worker_app, cluster, {"n": 2, "query_after": True}, lambda j: j.status != "running"
    )
    # Recorded as a failed try to retry later, not left running until a lease runs out.
    assert job.status == JobStatus.QUEUED
    assert job.attempts == 1
    assert job.locked_by is None and job.locked_until is None
    assert "OperationalError" in job.last_error
    assert RAN == [2]
    with worker_app.app_context():
        assert db.session.scalars(select(Job.kind)).all() == ["outage_in_hand"]
        db.session.remove()


def test_a_job_in_hand_is_never_claimed_again_by_its_own_worker(app):
    # The outage tests above race the claim loop against the recording of an outcome;
    # this shows the rule they rely on without the race.
    job = enqueue("outage_in_hand", {"n": 3})
    db.session.commit()
    assert claim("host:1", 5) == [job.id]
    db.session.execute(
        update(Job).where(Job.id == job.id).values(locked_until=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    assert claim("host:1", 5, exclude=[job.id]) == []  # its lease ran out, but it is in hand
    assert claim("host:2", 5) == [job.id]  # another worker takes it up after the lease
