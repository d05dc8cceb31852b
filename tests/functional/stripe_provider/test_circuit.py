"""The reconciliation's circuit breaker and time budget, with the real Stripe SDK over
HTTP: an unreachable Stripe costs a probe per cool-down, not a call per stuck payment,
and the circuit shows in /readyz and /metrics."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.periodic import reconcile_payments
from portal.payments.models import Payment
from portal.providers.circuit import THRESHOLD, ProviderCircuit, cool_down
from tests.factories import make_stuck_payments
from tests.functional.test_observability import _metric
from tests.servers import HTTPRecorder, Recorded, free_port, json_response

OPEN = 'portal_provider_circuit_open{provider="stripe"}'


def _asked(ids: list[str], since: datetime) -> int:
    """Stuck payments the reconciliation asked Stripe about (it stamps each one it asks)."""
    db.session.expire_all()
    return db.session.execute(
        select(func.count()).where(Payment.id.in_(ids), Payment.updated_at > since)
    ).scalar_one()


def _circuit() -> ProviderCircuit:
    db.session.expire_all()
    return db.session.get(ProviderCircuit, "stripe")


def _cool_down_passes() -> None:
    db.session.execute(update(ProviderCircuit).values(retry_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def _still_processing(req: Recorded) -> tuple[int, dict[str, str], bytes]:
    intent_id = urlsplit(req.path).path.rsplit("/", 1)[-1]
    intent = {"id": intent_id, "object": "payment_intent", "amount": 12500,
              "currency": "eur", "status": "processing", "metadata": {}}  # fmt: skip
    return json_response(200, intent)


def test_an_unreachable_stripe_costs_one_probe_per_cool_down(app, client, merchant):
    stuck = make_stuck_payments(merchant, 12)
    start = utcnow()
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    app.config.update(PORTAL_STRIPE_API_BASE=nothing_listens, PORTAL_STRIPE_SECRET_KEY="sk_test")

    reconcile_payments()
    assert _asked(stuck, start) == THRESHOLD  # then the circuit opened: nine not asked
    circuit = _circuit()
    assert circuit.failures == THRESHOLD and circuit.retry_at > utcnow()
    assert "Connection refused" in circuit.last_error
    assert client.get("/readyz").json["checks"]["provider:stripe"].startswith("open since")
    metrics = client.get("/metrics").text
    assert _metric(metrics, OPEN) == 1
    assert _metric(metrics, 'portal_provider_consecutive_failures{provider="stripe"}') == 3

    reconcile_payments()  # a minute later, still open: nobody calls
    assert _asked(stuck, start) == THRESHOLD

    _cool_down_passes()
    reconcile_payments()  # one probe, which fails: open again, for longer
    assert _asked(stuck, start) == THRESHOLD + 1
    circuit = _circuit()
    assert circuit.failures == THRESHOLD + 1
    assert circuit.retry_at - circuit.last_failure_at == cool_down(THRESHOLD + 1)
    assert cool_down(THRESHOLD + 1) == 2 * cool_down(THRESHOLD)

    stripe = HTTPRecorder(_still_processing).start()
    try:
        app.config.update(PORTAL_STRIPE_API_BASE=stripe.url)
        _cool_down_passes()
        reconcile_payments()  # the probe is answered: closed, and the run goes on
        assert len(stripe.requests) == 12 - (THRESHOLD + 1)  # those not asked yet
    finally:
        stripe.stop()
    circuit = _circuit()
    assert circuit.retry_at is None and circuit.failures == 0
    assert client.get("/readyz").json["checks"]["provider:stripe"] == "closed"
    assert _metric(client.get("/metrics").text, OPEN) == 0


def test_a_reconciliation_run_stops_calling_when_its_budget_is_spent(app, merchant):
    make_stuck_payments(merchant, 10)

    def slowly(req: Recorded) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.5)
        return _still_processing(req)

    stripe = HTTPRecorder(slowly).start()
    try:
        app.config.update(PORTAL_STRIPE_API_BASE=stripe.url, PORTAL_STRIPE_SECRET_KEY="sk_test")
        reconcile_payments(budget=1.0)
        # Calls start while the second of budget lasts; each takes half a second or more.
        assert 1 <= len(stripe.requests) <= 3
    finally:
        stripe.stop()
    assert _circuit() is None  # every call was answered: no circuit to speak of
