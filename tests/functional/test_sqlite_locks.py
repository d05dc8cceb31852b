"""A row lock means the same on SQLite as on PostgreSQL: a second writer waits for the first
and then reads what it committed (portal/database.py)."""

from __future__ import annotations

import threading

from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from portal.payments.services import lock_request
from tests.factories import make_request


def test_a_second_lock_waits_for_the_first_and_reads_its_commit(app, merchant):
    pr_id = make_request(merchant).id
    locked, release = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def first() -> None:
        with app.app_context():
            pr = lock_request(pr_id)
            locked.set()
            release.wait(60)
            pr.amount_paid = 700
            db.session.commit()

    def second() -> None:
        locked.wait(60)
        with app.app_context():
            seen["amount_paid"] = lock_request(pr_id).amount_paid
            db.session.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    locked.wait(60)
    threads[1].join(0.5)
    # However slow the machine, the second writer cannot have got past the first one's lock.
    assert threads[1].is_alive() and "amount_paid" not in seen
    release.set()
    for t in threads:
        t.join(60)
    assert seen == {"amount_paid": 700}


def test_reads_do_not_wait_for_a_writer(app, merchant):
    pr_id = make_request(merchant).id
    locked, release = threading.Event(), threading.Event()

    def writer() -> None:
        with app.app_context():
            lock_request(pr_id).amount_paid = 700
            db.session.flush()
            locked.set()
            release.wait(60)
            db.session.rollback()

    thread = threading.Thread(target=writer)
    thread.start()
    locked.wait(60)
    try:
        with app.app_context():
            # A plain read sees the last committed state at once, as READ COMMITTED does.
            assert db.session.get(PaymentRequest, pr_id).amount_paid == 0
    finally:
        release.set()
        thread.join(60)
