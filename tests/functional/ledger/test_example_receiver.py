"""The documented example receiver verifies a real callback from the portal."""

from __future__ import annotations

from examples.ledger_receiver import create_app as receiver_app
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.payments.services import fulfil_payment, start_payment
from tests.factories import make_merchant, make_request
from tests.servers import serve_wsgi


def test_example_receiver_applies_a_settlement_once(app):
    m = make_merchant()
    probe = add_endpoint(m.id, "http://127.0.0.1:9/unused")
    secret = probe.secret
    db.session.delete(probe)
    db.session.commit()
    ledger = receiver_app(secret)
    with serve_wsgi(ledger) as base:
        endpoint = add_endpoint(m.id, f"{base}/callbacks")
        endpoint.secret = secret
        db.session.commit()
        payment = start_payment(make_request(m), None)
        fulfil_payment(payment.id)
        run_due_jobs()
        applied = ledger.config["APPLIED"]
        assert sorted(e["type"] for e in applied.values()) == [
            "payment.succeeded",
            "payment_request.paid",
        ]
        # a tampered secret is refused by the receiver, and recorded as a failed attempt
        endpoint.secret = "whsec_" + "A" * 43 + "="
        db.session.commit()
        from portal.ledger.callbacks import redeliver_event

        redeliver_event(m.id, next(iter(applied)))
        db.session.commit()
        run_due_jobs()
        from portal.ledger.models import CallbackAttempt

        last = db.session.query(CallbackAttempt).order_by(CallbackAttempt.id.desc()).first()
        assert last.status_code == 400
