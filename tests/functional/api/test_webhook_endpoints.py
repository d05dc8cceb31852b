"""``/api/v1/webhook-endpoints``: list, create (secret shown once), read, change, rotate."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from standardwebhooks import Webhook

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import redeliver_event
from portal.ledger.models import CallbackDelivery, CallbackEndpoint
from portal.ledger.services import record_event
from tests.factories import make_merchant, make_request
from tests.servers import HTTPRecorder

URL = "https://127.0.0.1:9/hook"  # loopback: allowed by the tests' PORTAL_ALLOW_PRIVATE_CALLBACKS


def test_endpoints_are_managed_through_the_api(app, client):
    m, other = make_merchant(), make_merchant(name="Other")
    made = client.post("/api/v1/webhook-endpoints", headers=m.headers,
                       json={"url": URL, "event_types": ["payment.succeeded"]})  # fmt: skip
    assert made.status_code == 201, made.json
    endpoint = made.json
    assert endpoint["secret"].startswith("whsec_") and endpoint["event_types"] == [
        "payment.succeeded"
    ]
    stored = db.session.get(CallbackEndpoint, endpoint["id"])
    assert stored.secret == endpoint["secret"] and stored.merchant_id == m.id
    listed = client.get("/api/v1/webhook-endpoints", headers=m.headers).json["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and listed[0]["secret"] is None
    assert client.get("/api/v1/webhook-endpoints", headers=other.headers).json["data"] == []
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}"
    assert client.get(path, headers=m.headers).json["secret"] is None
    changed = client.patch(path, headers=m.headers, json={"enabled": False, "event_types": []})
    assert changed.json["enabled"] is False and changed.json["event_types"] == []
    assert changed.json["disabled_reason"]
    assert client.patch(path, headers=m.headers, json={"enabled": True}).json["enabled"] is True
    rotated = client.post(f"{path}/rotate", headers=m.headers, json={"overlap_hours": 2})
    assert rotated.status_code == 200
    db.session.expire_all()
    stored = db.session.get(CallbackEndpoint, endpoint["id"])
    assert stored.secret == rotated.json["secret"] != endpoint["secret"]
    assert stored.previous_secret == endpoint["secret"]
    assert stored.previous_secret_expires_at <= utcnow() + timedelta(hours=2)
    # another merchant's endpoint is a 404 everywhere
    for method, suffix in (("GET", ""), ("PATCH", ""), ("POST", "/rotate")):
        resp = client.open(path + suffix, method=method, json={}, headers=other.headers)
        assert resp.status_code == 404, (method, suffix)


def test_bad_endpoints_are_refused(app, client):
    m = make_merchant()
    for body, code in (
        ({"url": "ftp://ledger.example/hook"}, "unsafe_url"),
        ({"url": "https://user:pw@127.0.0.1/hook"}, "unsafe_url"),
        ({"url": "https://127.0.0.1:99999/hook"}, "unsafe_url"),
        ({"url": "https://no-such-host.invalid/hook"}, "unsafe_url"),
        ({"url": URL, "event_types": ["payment.maybe"]}, "unknown_event_type"),
        ({"url": URL, "secret": "whsec_mine"}, None),
    ):
        resp = client.post("/api/v1/webhook-endpoints", headers=m.headers, json=body)
        assert resp.status_code == 422, (body, resp.json)
        if code:
            assert resp.json["error"]["code"] == code, (body, resp.json)
    assert db.session.query(CallbackEndpoint).count() == 0


def test_production_refuses_plain_http_and_private_addresses(app, client):
    app.config["PORTAL_ALLOW_PRIVATE_CALLBACKS"] = False
    m = make_merchant()
    for url in ("http://127.0.0.1:9/hook", URL):
        resp = client.post("/api/v1/webhook-endpoints", headers=m.headers, json={"url": url})
        assert resp.status_code == 422 and resp.json["error"]["code"] == "unsafe_url", url


def test_a_test_event_is_signed_and_sent_once(app, client):
    receiver = HTTPRecorder(lambda req: (200, {}, b"ok")).start()
    try:
        m = make_merchant()
        made = client.post("/api/v1/webhook-endpoints", headers=m.headers,
                           json={"url": receiver.url}).json  # fmt: skip
        resp = client.post(f"/api/v1/webhook-endpoints/{made['id']}/test", headers=m.headers)
        assert resp.status_code == 202 and resp.json["id"].startswith("evt_test_")
        run_due_jobs()
        [request] = receiver.requests
        payload = Webhook(made["secret"]).verify(request.body.decode(), {
            k.lower(): v for k, v in request.headers.items()})  # fmt: skip
        assert payload["type"] == "endpoint.test" and payload["id"] == resp.json["id"]
        other = make_merchant(name="Other")
        resp = client.post(f"/api/v1/webhook-endpoints/{made['id']}/test", headers=other.headers)
        assert resp.status_code == 404
        run_due_jobs()
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


def test_a_deleted_endpoint_gets_nothing_more_and_its_history_stays(app, client):
    m, other = make_merchant(), make_merchant(name="Other")
    receiver = HTTPRecorder(lambda req: (503, {}, b"down")).start()
    try:
        endpoint = client.post("/api/v1/webhook-endpoints", headers=m.headers,
                               json={"url": receiver.url}).json  # fmt: skip
        kept = client.post("/api/v1/webhook-endpoints", headers=m.headers,
                           json={"url": URL}).json  # fmt: skip
        pr = make_request(m)
        event = record_event("payment_request.voided", pr)
        db.session.commit()
        run_due_jobs()  # the ledger is down: the delivery waits for its next try
        db.session.commit()
        path = f"/api/v1/webhook-endpoints/{endpoint['id']}"
        assert client.delete(path, headers=other.headers).status_code == 404
        gone = client.delete(path, headers=m.headers)
        assert gone.status_code == 200
        assert gone.json == {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
        # Gone from every answer, and a second delete is a 404 too.
        for method in ("GET", "PATCH", "DELETE"):
            assert client.open(path, method=method, json={}, headers=m.headers).status_code == 404
        listed = client.get("/api/v1/webhook-endpoints", headers=m.headers).json["data"]
        assert [e["id"] for e in listed] == [kept["id"]]
        # The waiting delivery is closed, its attempt kept; new events and redeliveries skip it.
        db.session.expire_all()
        waiting = db.session.scalars(
            select(CallbackDelivery).where(CallbackDelivery.endpoint_id == endpoint["id"])
        ).one()
        assert waiting.status == "dead" and waiting.last_error == "endpoint deleted"
        assert waiting.attempts == 1
        record_event("payment_request.expired", pr)
        redeliver_event(m.id, event.id)
        db.session.commit()
        deliveries = db.session.scalars(
            select(CallbackDelivery).where(CallbackDelivery.endpoint_id == endpoint["id"])
        ).all()
        assert len(deliveries) == 1 and deliveries[0].status == "dead"
        hits = len(receiver.requests)
        run_due_jobs()
        assert len(receiver.requests) == hits
    finally:
        receiver.stop()
