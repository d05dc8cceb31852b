"""Fair workers on PostgreSQL: a merchant's hanging ledger holds at most four deliveries
and never a whole worker, and one merchant's backlog never makes another one wait."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from portal.extensions import db
from portal.jobs.worker import PER_KEY_LIMIT
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackDelivery
from portal.ledger.services import record_event
from tests.factories import make_merchant, make_request
from tests.functional.ledger.test_workers_pg import make_events, start_worker
from tests.servers import HTTPRecorder, Recorded


def wait_until(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


class HangingLedger:
    """A receiver that holds every request until released, and counts those in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.answered = 0
        self.release = threading.Event()

    def respond(self, req: Recorded) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            self.release.wait(60)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.answered += 1
        return 200, {}, b"ok"


def start_idle_workers(db_url: str, count: int, log_path: Path) -> list[subprocess.Popen]:
    """``count`` worker processes, returned once every one of them is polling."""
    with log_path.open("wb") as log:
        workers = [
            start_worker(
                db_url,
                exit_when_idle=False,
                log=log,
                PORTAL_CALLBACK_TIMEOUT="60",
                PYTHONUNBUFFERED="1",
            )
            for _ in range(count)
        ]
    started = wait_until(lambda: log_path.read_text().count(" running with ") == count, 60)
    assert started, log_path.read_text()[-2000:]
    return workers


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


@pytest.mark.parametrize("count", [1, 3])
def test_a_hanging_ledger_never_delays_another_merchants_callback(
    pg_app, pg_url, tmp_path: Path, count: int
):
    hanging = HangingLedger()
    slow = HTTPRecorder(hanging.respond).start()
    hanging_when_b_arrived: list[tuple[int, int]] = []

    def answer_b(req: Recorded) -> tuple[int, dict[str, str], bytes]:
        with hanging.lock:
            hanging_when_b_arrived.append((hanging.in_flight, hanging.answered))
        return 200, {}, b"ok"

    fast = HTTPRecorder(answer_b).start()
    workers: list[subprocess.Popen] = []
    try:
        workers = start_idle_workers(pg_url, count, tmp_path / "workers.log")
        # All of them claim at once: A's ledger holds as many deliveries as they give it.
        merchant_a = make_events(8, slow.url)
        assert wait_until(lambda: hanging.in_flight >= 3, 60), "A's deliveries never started"
        merchant_b = make_events(1, fast.url)
        assert wait_until(lambda: fast.requests, 30), "B's callback waited behind A's ledger"
        [(a_in_flight, a_answered)] = hanging_when_b_arrived
        assert a_in_flight >= 3 and a_answered == 0  # A's ledger was still hanging
        assert len(slow.requests) <= PER_KEY_LIMIT

        hanging.release.set()
        assert wait_until(lambda: _succeeded(merchant_a) == 8, 60)
        assert hanging.peak <= PER_KEY_LIMIT  # measured at the receiver, over every worker
        assert len({r.headers["webhook-id"] for r in slow.requests}) == 8
        assert _succeeded(merchant_b) == 1
    finally:
        hanging.release.set()
        stop(workers)
        slow.stop()
        fast.stop()
    assert (tmp_path / "workers.log").read_text().count("Traceback") == 0


def _succeeded(merchant_id: str) -> int:
    db.session.expire_all()
    return (
        db.session.query(CallbackDelivery)
        .filter_by(merchant_id=merchant_id, status="succeeded")
        .count()
    )


MERCHANTS = 50
EACH = 40  # 2,000 callbacks here; bench/ drains 100,000 and times the claims


def test_two_workers_drain_fifty_merchants_backlogs_side_by_side(pg_app, pg_url, tmp_path):
    receiver = HTTPRecorder(lambda req: (200, {}, b"ok")).start()
    try:
        # Merchant 0's backlog is the oldest, merchant 49's the newest: oldest first
        # would leave merchant 49 waiting for every callback of the 49 others.
        for n in range(MERCHANTS):
            merchant = make_merchant(name=f"Shop {n}")
            add_endpoint(merchant.id, f"{receiver.url}/m{n}")
            request = make_request(merchant)
            for _ in range(EACH):
                record_event("payment_request.voided", request)
            db.session.commit()
        with (tmp_path / "workers.log").open("wb") as log:
            workers = [start_worker(pg_url, log=log) for _ in range(2)]
        for worker in workers:
            assert worker.wait(300) == 0, (tmp_path / "workers.log").read_text()[-3000:]

        ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
        assert len(ids) == MERCHANTS * EACH and set(ids.values()) == {1}
        order = [int(r.path.removeprefix("/m")) for r in receiver.requests]
        first = {m: order.index(m) for m in range(MERCHANTS)}
        assert max(first.values()) < 2 * MERCHANTS  # every merchant starts in the first round
        done = Counter()
        for merchant in order:
            done[merchant] += 1
            if done[merchant] == EACH:
                break  # the first merchant to be done: where is everyone else?
        assert min(done[m] for m in range(MERCHANTS)) >= EACH * 0.8, done
    finally:
        receiver.stop()
