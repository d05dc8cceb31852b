"""Worker processes on PostgreSQL: many draining at once, and one killed mid-delivery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

from portal.extensions import db
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackDelivery
from portal.ledger.services import record_event
from tests.conftest import TEST_SECRET
from tests.factories import make_merchant, make_request
from tests.servers import HTTPRecorder, wait_until

ROOT = Path(__file__).resolve().parents[3]


def start_worker(
    db_url: str, *, exit_when_idle: bool = True, log: IO[bytes] | None = None, **env: str
) -> subprocess.Popen:
    """A ``flask worker`` process; its output goes to ``log`` (a long run fills a pipe)."""
    environ = {
        **os.environ,
        "PORTAL_ENV": "test",
        "PORTAL_DATABASE_URL": db_url,
        "PORTAL_SECRET_KEYS": TEST_SECRET,
        "PORTAL_ALLOW_PRIVATE_CALLBACKS": "1",
        **env,
    }
    command = [sys.executable, "-m", "flask", "--app", "portal", "worker"]
    return subprocess.Popen(
        [*command, "--exit-when-idle"] if exit_when_idle else command,
        cwd=ROOT,
        env=environ,
        stdout=log or subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def make_events(count: int, url: str) -> str:
    m = make_merchant()
    add_endpoint(m.id, url)
    pr = make_request(m)
    for _ in range(count):
        record_event("payment_request.voided", pr)
    db.session.commit()
    return m.id


def test_two_workers_deliver_a_thousand_callbacks_exactly_once(pg_app, pg_url):
    receiver = HTTPRecorder(lambda req: (200, {}, b"ok")).start()
    try:
        make_events(1000, receiver.url)
        workers = [start_worker(pg_url, PORTAL_WORKER_THREADS="4") for _ in range(2)]
        for w in workers:
            out, _ = w.communicate(timeout=600)
            assert w.returncode == 0, out.decode()[-2000:]
        ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
        assert len(ids) == 1000
        assert set(ids.values()) == {1}, "an event was delivered twice"
        db.session.expire_all()
        statuses = Counter(d.status for d in db.session.query(CallbackDelivery))
        assert statuses == {"succeeded": 1000}
    finally:
        receiver.stop()


def _lines(proc: subprocess.Popen) -> tuple[list[str], threading.Thread]:
    """The process's output lines as they come, read by the returned thread."""
    lines: list[str] = []

    def read() -> None:
        with proc.stdout:  # closed at the end of the output
            for line in proc.stdout:
                lines.append(line.decode(errors="replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def test_killed_worker_job_is_taken_up_after_the_lease(pg_app, pg_url):
    first_arrived, victim_dead = threading.Event(), threading.Event()

    def respond(req):
        if not first_arrived.is_set():
            first_arrived.set()
            # The worker is killed while it waits for this answer: held until it is dead,
            # however long the test takes to get there.
            victim_dead.wait(120)
        return 200, {}, b"ok"

    receiver = HTTPRecorder(respond).start()
    try:
        make_events(1, receiver.url)
        victim = start_worker(pg_url, PORTAL_JOB_LEASE_SECONDS="2")
        assert first_arrived.wait(120), "the first worker never called the receiver"
        victim.send_signal(signal.SIGKILL)
        victim.wait(60)
        victim_dead.set()
        victim.stdout.close()
        time.sleep(2.5)  # let the lease run out (wall-clock time: a busy machine only adds)
        rescuer = start_worker(pg_url, PORTAL_JOB_LEASE_SECONDS="2")
        out, _ = rescuer.communicate(timeout=240)
        assert rescuer.returncode == 0, out.decode()[-2000:]
        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert len(ids) == 2 and ids[0] == ids[1]  # the same webhook-id: receivers dedupe
        db.session.expire_all()
        delivery = db.session.query(CallbackDelivery).one()
        assert delivery.status == "succeeded"
        assert delivery.event_id == ids[0]
    finally:
        victim_dead.set()
        receiver.stop()


def test_sigterm_finishes_the_job_in_hand(pg_app, pg_url):
    started, signalled = threading.Event(), threading.Event()

    def respond(req):
        started.set()
        # SIGTERM arrives while this delivery is in flight: the answer waits until the
        # worker has said it is finishing, however slow the machine.
        signalled.wait(120)
        return 200, {}, b"ok"

    receiver = HTTPRecorder(respond).start()
    try:
        make_events(1, receiver.url)
        worker = start_worker(pg_url)
        output, reader = _lines(worker)
        assert started.wait(120), "the worker never called the receiver"
        worker.send_signal(signal.SIGTERM)
        assert wait_until(lambda: any("finishing 1 job(s) in hand" in line for line in output))
        signalled.set()
        worker.wait(120)
        reader.join(30)
        assert worker.returncode == 0, "".join(output)[-2000:]
        db.session.expire_all()
        assert db.session.query(CallbackDelivery).one().status == "succeeded"
        assert len(receiver.requests) == 1
    finally:
        signalled.set()
        receiver.stop()
