"""PostgreSQL restarting mid-traffic: failed requests while it is down, nothing after."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import requests
from flask_migrate import upgrade
from sqlalchemy import func, select, text

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.queue import enqueue, job_handler
from portal.jobs.worker import Worker
from portal.ledger.models import Event
from portal.links import link_token
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.payments.services import start_payment
from portal.states import JobStatus
from tests.conftest import _empty, make_app
from tests.factories import make_merchant, make_request
from tests.functional.outages.conftest import traffic
from tests.functional.stripe_provider.conftest import WEBHOOK_SECRET, intent_event, sign
from tests.servers import serve_wsgi


@pytest.fixture
def portal(cluster):
    """The portal on a real port, on the private cluster, with its migrations applied."""
    app = make_app(
        cluster.url,
        payment_provider="stripe",
        stripe_webhook_secret=WEBHOOK_SECRET,
        WTF_CSRF_ENABLED=False,
    )
    with app.app_context():
        upgrade()
        db.session.remove()
    with serve_wsgi(app) as base:
        yield app, base
    _empty(app)


def _setup(app):
    with app.app_context():
        merchant = make_merchant()
        pr = make_request(merchant)
        payment = start_payment(make_request(merchant), None)
        payment.provider_payment_id = f"pi_{payment.id}"
        db.session.commit()
        event = intent_event(payment, event_id="evt_outage_1")
        ids = (pr.id, payment.id, payment.request_id)
        headers = merchant.headers
        db.session.remove()
    return ids, headers, event


def _traffic(base, path, headers, key):
    return traffic(base, path, headers, key, timeout=15)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_requests_fail_cleanly_while_down_and_all_succeed_after(cluster, portal, mode):
    app, base = portal
    (pr_id, _, _), headers, _ = _setup(app)
    path = f"/p/{link_token_in(app, pr_id)}"
    assert _traffic(base, path, headers, "before") == [200, 200, 201]

    cluster.stop(mode)
    down = _traffic(base, path, headers, "during")
    assert down == [503, 503, 503]
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{base}/readyz", timeout=15).status_code == 503
    api = requests.get(f"{base}/api/v1/payment-requests", headers=headers, timeout=15)
    assert api.json()["error"]["code"] == "service_unavailable"
    assert api.headers["Retry-After"] == "5"

    cluster.start()
    after = [_traffic(base, path, headers, f"after-{n}") for n in range(4)]
    assert after == [[200, 200, 201]] * 4
    # the merchant retries the create that failed: made once, now
    retried = _traffic(base, path, headers, "during")
    assert retried == [200, 200, 201]
    assert requests.get(f"{base}/readyz", timeout=15).status_code == 200
    with app.app_context():
        refs = db.session.scalars(select(PaymentRequest.reference)).all()
        assert sorted(r for r in refs if r and r != "STMT-1") == sorted(
            ["before", "during", "after-0", "after-1", "after-2", "after-3"]
        )
        db.session.remove()


def link_token_in(app, request_id):
    with app.app_context():
        return link_token(request_id)


def test_a_webhook_during_the_outage_gets_a_5xx_and_fulfils_once_after(cluster, portal):
    app, base = portal
    (_, payment_id, request_id), _, event = _setup(app)

    def deliver():
        return requests.post(
            f"{base}/webhooks/stripe",
            data=event,
            headers={"Stripe-Signature": sign(event), "Content-Type": "application/json"},
            timeout=15,
        ).status_code

    cluster.stop("immediate")
    assert deliver() >= 500  # Stripe retries anything but 2xx
    cluster.start()
    assert deliver() == 200
    assert deliver() == 200  # Stripe's own retry of the same event
    with app.app_context():
        assert db.session.get(Payment, payment_id).status == "succeeded"
        assert db.session.get(PaymentRequest, request_id).status == "paid"
        succeeded = db.session.scalar(
            select(func.count(Event.id)).where(
                Event.payment_id == payment_id, Event.type == "payment.succeeded"
            )
        )
        receipts = db.session.scalar(select(func.count(Job.id)).where(Job.kind == "send_receipt"))
        assert (succeeded, receipts) == (1, 1)
        db.session.remove()


RAN: list[int] = []


@job_handler("outage_probe")
def _probe(payload):
    db.session.execute(text("SELECT 1"))
    RAN.append(payload["n"])


def test_the_worker_rides_out_the_outage_and_runs_each_job_once(cluster, portal):
    app, _ = portal
    RAN.clear()
    with app.app_context():
        for n in range(5):  # due in the middle of the outage
            enqueue("outage_probe", {"n": n}, run_at=utcnow() + timedelta(seconds=1))
        db.session.commit()
        db.session.remove()
    worker = Worker(app, threads=2, poll=0.1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        cluster.stop("immediate")
        time.sleep(3)  # the worker polls a database that is gone
        assert thread.is_alive()
        cluster.start()
        with app.app_context():
            for n in range(5, 10):
                enqueue("outage_probe", {"n": n})
            db.session.commit()
            db.session.remove()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(RAN) < 10:
            time.sleep(0.1)
        time.sleep(0.5)  # a second run, if there were one, would show now
        assert sorted(RAN) == list(range(10))
        with app.app_context():
            statuses = db.session.scalars(
                select(Job.status).where(Job.kind == "outage_probe")
            ).all()
            assert statuses == [JobStatus.DONE] * 10
            db.session.remove()
    finally:
        worker.stop()
        thread.join(15)
    assert not thread.is_alive()
