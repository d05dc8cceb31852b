"""The claim, on SQLite and PostgreSQL: at most four in flight per queue, the free threads
handed round the queues, the last one kept for a queue with nothing in hand here."""

from __future__ import annotations

from datetime import timedelta

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.claims import PER_KEY_LIMIT, claim_jobs
from portal.jobs.queue import enqueue
from portal.jobs.worker import finish_job


def _queue(key: str | None, count: int, kind: str = "deliver_callback", age: int = 60) -> None:
    for n in range(count):
        enqueue(kind, {"n": n}, queue_key=key, run_at=utcnow() - timedelta(seconds=age - n))
    db.session.commit()


def test_a_queue_never_has_more_than_four_in_flight(app):
    _queue("endpoint:a", 10)
    first = claim_jobs("host:1", 10)
    assert len(first) == PER_KEY_LIMIT
    assert claim_jobs("host:2", 10) == []  # over every worker
    finish_job(first[0].id, "host:1", None)
    [next_one] = claim_jobs("host:2", 10)
    assert next_one.queue_key == "endpoint:a"


def test_the_free_threads_go_round_the_queues_not_to_the_oldest_backlog(app):
    _queue("endpoint:a", 6, age=600)  # the oldest backlog
    _queue("endpoint:b", 2)
    _queue("endpoint:c", 2)
    _queue(None, 2, kind="send_receipt")
    lanes = [job.lane for job in claim_jobs("host:1", 4)]
    assert sorted(lanes) == ["endpoint:a", "endpoint:b", "endpoint:c", "kind:send_receipt"]


def test_the_round_robin_goes_on_after_the_last_lane_served(app):
    for key in ("endpoint:a", "endpoint:b", "endpoint:c"):
        _queue(key, 3)
    served = []
    after = ""
    for _ in range(6):
        [job] = claim_jobs("host:1", 1, after=after)
        finish_job(job.id, "host:1", None)  # nothing in flight: only the turn decides
        served.append(job.lane.removeprefix("endpoint:"))
        after = job.lane
    assert served == ["a", "b", "c", "a", "b", "c"]


def test_the_last_free_thread_waits_for_a_queue_with_nothing_in_hand(app):
    _queue("endpoint:a", 3)
    held = {"endpoint:a": 2}  # this worker runs two of A's jobs already
    assert claim_jobs("host:1", 1, held=held) == []
    _queue("endpoint:b", 1)
    [job] = claim_jobs("host:1", 1, held=held)
    assert job.lane == "endpoint:b"
    assert [j.lane for j in claim_jobs("host:1", 2, held=held)] == ["endpoint:a"]


def test_jobs_not_due_yet_are_left_alone(app):
    enqueue("deliver_callback", {}, queue_key="endpoint:a", run_at=utcnow() + timedelta(hours=1))
    enqueue("send_receipt", {}, run_at=utcnow() + timedelta(hours=1))
    db.session.commit()
    assert claim_jobs("host:1", 4) == []
