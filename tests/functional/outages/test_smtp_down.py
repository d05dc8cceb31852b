"""SMTP down delays receipts; they are sent, once, when it is back."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.queue import MAIL_ATTEMPTS
from portal.jobs.worker import run_due_jobs
from portal.payments.models import Payment
from portal.states import JobStatus
from tests.factories import make_request
from tests.functional.customer.test_pages import follow, pay
from tests.servers import SMTPRecorder


def _time_passes() -> None:
    db.session.execute(update(Job).where(Job.status == JobStatus.QUEUED).values(run_at=utcnow()))
    db.session.commit()


def test_receipts_wait_for_the_mail_server_and_go_out_once(app, client, merchant):
    server = SMTPRecorder()  # its port is chosen, nothing listens yet
    app.config["PORTAL_MAIL_URL"] = server.url
    follow(client, pay(client, make_request(merchant)))  # jan@example.com, Dutch
    payment = db.session.query(Payment).one()
    assert payment.status == "succeeded"

    for _ in range(3):  # three tries while the server is down
        run_due_jobs()
        _time_passes()
    job = db.session.query(Job).filter_by(kind="send_receipt").one()
    db.session.refresh(job)
    assert job.status == JobStatus.QUEUED and job.attempts == 3
    assert "Connection refused" in job.last_error or "ConnectionRefused" in job.last_error
    assert job.max_attempts == MAIL_ATTEMPTS
    db.session.refresh(payment)
    assert payment.receipt_sent_at is None

    server.start()
    try:
        run_due_jobs()
        _time_passes()
        run_due_jobs()  # nothing left to send
        assert len(server.messages) == 1
        assert server.messages[0]["To"] == "jan@example.com"
        db.session.refresh(job)
        db.session.refresh(payment)
        assert job.status == JobStatus.DONE
        assert payment.receipt_sent_at is not None
    finally:
        server.stop()


def test_a_long_outage_keeps_the_receipt_trying_for_a_day():
    from portal.jobs.worker import BACKOFF

    waits = [BACKOFF[min(n, len(BACKOFF) - 1)] for n in range(MAIL_ATTEMPTS - 1)]
    assert sum(waits, timedelta()) > timedelta(hours=20)
