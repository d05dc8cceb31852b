"""An idle worker wakes when a job is committed (PostgreSQL LISTEN/NOTIFY), not a poll later.

The worker here polls once an hour: a job it runs within the test's deadline was found
because something woke it, and the notification count says what. The deadline only stops
a hang; nothing is timed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask

from portal.extensions import db
from portal.jobs.worker import Worker
from portal.ledger.callbacks import add_endpoint
from portal.ledger.services import record_event
from tests.factories import make_merchant, make_request
from tests.servers import HTTPRecorder, wait_until

AN_HOUR = 3600.0


@pytest.fixture
def receiver() -> Iterator[HTTPRecorder]:
    recorder = HTTPRecorder(lambda req: (200, {}, b"ok")).start()
    yield recorder
    recorder.stop()


@pytest.fixture
def worker(pg_app: Flask) -> Iterator[Worker]:
    worker = Worker(pg_app, threads=2, poll=AN_HOUR)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.wakeup.listening.wait(120), "the worker never listened"
    yield worker
    worker.stop()
    thread.join(60)
    assert not thread.is_alive(), "stop() did not wake the waiting worker"


@pytest.fixture
def request_with_endpoint(pg_app, receiver):
    merchant = make_merchant()
    add_endpoint(merchant.id, receiver.url)
    pr = make_request(merchant)
    db.session.commit()
    return pr


def test_each_committed_callback_wakes_the_idle_worker(worker, receiver, request_with_endpoint):
    for round_ in range(3):
        heard = worker.wakeup.notifications
        record_event("payment_request.voided", request_with_endpoint)
        db.session.commit()
        assert wait_until(lambda h=heard: worker.wakeup.notifications > h), round_
        assert wait_until(lambda n=round_: len(receiver.requests) > n), round_
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 3


def test_a_rolled_back_job_notifies_nobody(worker, receiver, request_with_endpoint):
    heard = worker.wakeup.notifications
    record_event("payment_request.voided", request_with_endpoint)
    db.session.rollback()
    # The session forgot the rolled-back job: the next commit with a job notifies once...
    record_event("payment_request.expired", request_with_endpoint)
    db.session.commit()
    assert wait_until(lambda: len(receiver.requests) == 1)
    assert worker.wakeup.notifications == heard + 1
    # ...and one without a job not at all.
    make_merchant()
    db.session.commit()
    assert b"payment_request.expired" in receiver.requests[0].body
    assert worker.wakeup.notifications == heard + 1
