"""The worker's periodic duties: expiring overdue links, forgetting old finished jobs."""

from __future__ import annotations

from datetime import timedelta

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.worker import run_periodic
from portal.ledger.models import Event
from portal.payment_requests.models import PaymentRequest
from portal.payments.services import start_payment
from tests.factories import make_request, statement_body


def test_overdue_links_expire_with_their_event(app, merchant):
    overdue = make_request(merchant)
    in_flight = make_request(merchant, statement_body(reference="B"))
    fresh = make_request(merchant, statement_body(reference="C"))
    payment = start_payment(in_flight, None)
    payment.status = "processing"
    for pr in (overdue, in_flight):
        pr.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    run_periodic()
    db.session.expire_all()
    assert db.session.get(PaymentRequest, overdue.id).status == "expired"
    assert db.session.get(PaymentRequest, in_flight.id).status == "open"  # a payment decides
    assert db.session.get(PaymentRequest, fresh.id).status == "open"
    events = db.session.query(Event).all()
    assert [(e.type, e.request_id) for e in events] == [("payment_request.expired", overdue.id)]


def test_old_finished_jobs_are_forgotten(app):
    old = Job(kind="x", payload={}, status="done", finished_at=utcnow() - timedelta(days=8))
    recent = Job(kind="x", payload={}, status="done", finished_at=utcnow() - timedelta(days=1))
    failed = Job(kind="x", payload={}, status="failed", finished_at=utcnow() - timedelta(days=30))
    db.session.add_all([old, recent, failed])
    db.session.commit()
    run_periodic()
    assert {j.status for j in db.session.query(Job)} == {"done", "failed"}
    assert db.session.query(Job).count() == 2


def test_a_backlog_of_finished_jobs_is_forgotten_in_batches(app, monkeypatch):
    from portal.jobs import periodic

    monkeypatch.setattr(periodic, "CLEANUP_BATCH", 3)
    monkeypatch.setattr(periodic, "CLEANUP_BATCHES", 2)
    week_ago = utcnow() - timedelta(days=8)
    db.session.add_all(
        [Job(kind="x", payload={}, status="done", finished_at=week_ago) for _ in range(8)]
    )
    db.session.commit()
    run_periodic()  # two batches of three
    assert db.session.query(Job).count() == 2
    run_periodic()  # the rest, next minute
    assert db.session.query(Job).count() == 0
