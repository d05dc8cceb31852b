"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from datetime import timedelta

from flask_migrate import upgrade

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.queue import enqueue
from portal.ledger.models import CallbackDelivery, CallbackEndpoint, Event
from portal.links import link_token
from portal.states import CallbackStatus
from tests.conftest import make_app
from tests.factories import make_merchant, make_request


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start!r} in metrics")


def test_healthz_needs_no_database_and_readyz_says_it_is_gone(tmp_path):
    app = make_app("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["database"].startswith("unreachable")
    api = client.get("/api/v1/payment-requests", headers={"Authorization": "Bearer sk_portal_x"})
    assert api.status_code == 503 and api.json["error"]["code"] == "service_unavailable"
    assert api.headers["Retry-After"] == "5"
    with app.app_context():
        token = link_token("pr_0123456789abcdef")
    page = client.get(f"/p/{token}")
    assert page.status_code == 503 and "Nothing was charged" in page.text


def test_readyz_checks_migrations_and_the_job_backlog(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'ready.db'}", ready_max_job_age=60)
    client = app.test_client()
    with app.app_context():
        db.create_all()  # the tables, but no migration history
    not_migrated = client.get("/readyz")
    assert not_migrated.status_code == 503
    assert not_migrated.json["checks"]["migrations"].startswith("at None")

    app = make_app(f"sqlite:///{tmp_path / 'migrated.db'}", ready_max_job_age=60)
    client = app.test_client()
    with app.app_context():
        upgrade()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json == {
        "status": "ready", "checks": {"database": "ok", "migrations": "ok", "jobs": "ok",
                                      "ratelimit": "off"}
    }  # fmt: skip
    with app.app_context():
        enqueue("expire_links", {}, run_at=utcnow() - timedelta(seconds=30))
        enqueue("expire_links", {}, run_at=utcnow() + timedelta(hours=1))  # not due
        db.session.commit()
    assert client.get("/readyz").status_code == 200  # 30 s < 60 s
    with app.app_context():
        enqueue("expire_links", {}, run_at=utcnow() - timedelta(minutes=5))
        db.session.commit()
    stale = client.get("/readyz")
    assert stale.status_code == 503
    assert "oldest due job waited" in stale.json["checks"]["jobs"]


def test_metrics_count_requests_and_read_the_database(app, client, merchant):
    before = client.get("/metrics").text
    route = 'portal_http_requests_total{method="GET",route="/p/<token>",status="200"}'
    count = _metric(before, route) if route in before else 0.0
    pr = make_request(merchant)
    for _ in range(3):
        assert client.get(f"/p/{link_token(pr.id)}").status_code == 200
    client.get("/no/such/page")
    other = make_merchant(name="Other")
    for owner, status, attempts in (
        (merchant.id, CallbackStatus.PENDING, 2),  # failing, retrying
        (merchant.id, CallbackStatus.PENDING, 0),  # not tried yet: not failing
        (other.id, CallbackStatus.DEAD, 10),
    ):
        endpoint = CallbackEndpoint(merchant_id=owner, url="https://l.example/h", secret="whsec_x")
        event = Event(merchant_id=owner, seq=attempts, type="payment.succeeded", data={})
        db.session.add_all([endpoint, event])
        db.session.flush()
        db.session.add(
            CallbackDelivery(event_id=event.id, endpoint_id=endpoint.id, merchant_id=owner,
                             status=status, attempts=attempts)
        )  # fmt: skip
    enqueue("send_receipt", {"payment_id": "pay_x"}, run_at=utcnow() - timedelta(seconds=90))
    db.session.commit()

    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    text = resp.text
    assert _metric(text, route) == count + 3
    assert _metric(text, 'portal_http_requests_total{method="GET",route="unmatched",status="404"}')
    assert (
        _metric(text, 'portal_http_request_duration_seconds_count{method="GET",route="/p/<token>"}')
        >= 3
    )
    assert _metric(text, f'portal_callback_deliveries_failing{{merchant="{merchant.id}"}}') == 1
    assert _metric(text, f'portal_callback_deliveries_dead{{merchant="{other.id}"}}') == 1
    assert _metric(text, 'portal_jobs_queued{kind="send_receipt"}') == 1
    assert _metric(text, 'portal_jobs_oldest_due_age_seconds{kind="send_receipt"}') >= 90


def test_metrics_count_payments_by_status(app, client, merchant):
    from tests.functional.customer.test_pages import follow, pay

    follow(client, pay(client, make_request(merchant)))
    follow(client, pay(client, make_request(merchant), card="4000 0000 0000 0002"))
    text = client.get("/metrics").text
    assert _metric(text, 'portal_payments{status="succeeded"}') == 1
    assert _metric(text, 'portal_payments{status="failed"}') == 1


def test_metrics_need_the_token_when_one_is_set(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'm.db'}", metrics_token="s3cret-scrape-token")
    with app.app_context():
        db.create_all()
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 404
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert ok.status_code == 200 and "portal_payments" in ok.text
