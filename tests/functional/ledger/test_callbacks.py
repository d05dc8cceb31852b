"""Settlement callbacks to a real HTTP receiver, verified with the standardwebhooks library."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import UnsafeURL, add_endpoint, resolve_callback_url, rotate_secret
from portal.ledger.models import CallbackAttempt, CallbackDelivery, CallbackEndpoint
from portal.payments.services import fulfil_payment, start_payment
from tests.factories import make_merchant, make_request, statement_body
from tests.servers import HTTPRecorder

FAST = [0, 0, 0, 0]


@pytest.fixture
def receiver():
    answers: list[int] = []
    extra: dict[str, str] = {}

    def respond(req):
        status = answers.pop(0) if answers else 200
        return status, extra if status != 200 else {}, b'{"ok": true}'

    server = HTTPRecorder(respond).start()
    server.answers = answers
    server.extra_headers = extra
    yield server
    server.stop()


def settle(m, body=None):
    pr = make_request(m, body or statement_body())
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()
    return pr, payment


def drain(times: int = 1) -> None:
    """Run due jobs, making retries due at once (the schedule is tested separately)."""
    for _ in range(times):
        db.session.query(Job).filter(Job.status == "queued").update({"run_at": Job.created_at})
        db.session.commit()
        run_due_jobs()


def test_settlement_callback_is_signed_and_complete(app, receiver):
    m = make_merchant()
    endpoint = add_endpoint(m.id, f"{receiver.url}/ledger?x=1")
    db.session.commit()
    pr, payment = settle(m)
    run_due_jobs()
    assert len(receiver.requests) == 2
    verified = []
    for req in receiver.requests:
        assert req.path == "/ledger?x=1"
        headers = {k.lower(): v for k, v in req.headers.items()}
        verified.append(Webhook(endpoint.secret).verify(req.body, headers))
        assert headers["webhook-signature"].startswith("v1,")
    for req, event in zip(receiver.requests, verified, strict=True):
        assert req.headers["webhook-id"] == event["id"] and event["id"].startswith("evt_")
    succeeded = next(e for e in verified if e["type"] == "payment.succeeded")
    data = succeeded["data"]
    assert data["payment_request"]["id"] == pr.id
    assert data["payment_request"]["reference"] == "STMT-1"
    assert data["payment_request"]["customer"]["reference"] == "C-1"
    # €125.00 of a €150.00 balance: the older line is settled, the newer one is not.
    assert data["allocation"] == [
        {"position": 0, "reference": "L1", "amount": 5000, "settled": True, "remaining": 0},
        {"position": 1, "reference": "L2", "amount": 7500, "settled": False, "remaining": 2500},
    ]
    assert [(ln["reference"], ln["settled"]) for ln in data["payment_request"]["statement"][
        "lines"]] == [("L1", True), ("L2", False)]  # fmt: skip
    assert data["payment_request"]["amount_due"] == 0
    assert data["payment"]["amount"] == 12500 and data["payment"]["currency"] == "EUR"
    assert data["payment"]["id"] == payment.id
    assert [e["type"] for e in verified] == ["payment.succeeded", "payment_request.paid"]
    assert [e["sequence"] for e in verified] == [1, 2]
    deliveries = db.session.query(CallbackDelivery).all()
    assert {d.status for d in deliveries} == {"succeeded"}
    attempt = db.session.query(CallbackAttempt).first()
    assert attempt.status_code == 200 and attempt.latency_ms >= 0
    assert '"ok"' in attempt.response_excerpt


def test_retries_until_the_receiver_recovers(app, receiver):
    app.config["PORTAL_CALLBACK_SCHEDULE"] = FAST
    receiver.answers.extend([500, 302])
    m = make_merchant()
    add_endpoint(m.id, receiver.url, ["payment.succeeded"])
    db.session.commit()
    settle(m)
    drain(4)
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 1  # the same webhook-id on every retry
    delivery = db.session.query(CallbackDelivery).one()
    assert delivery.status == "succeeded" and delivery.attempts == 3
    codes = [a.status_code for a in db.session.query(CallbackAttempt).order_by(CallbackAttempt.id)]
    assert codes == [500, 302, 200]


def test_dead_lettered_after_the_last_try_then_replayed(app, receiver, client):
    app.config["PORTAL_CALLBACK_SCHEDULE"] = [0, 0]
    receiver.answers.extend([500] * 5)
    m = make_merchant()
    add_endpoint(m.id, receiver.url, ["payment.succeeded"])
    db.session.commit()
    settle(m)
    drain(4)
    delivery = db.session.query(CallbackDelivery).one()
    assert delivery.status == "dead" and delivery.attempts == 2
    event_id = delivery.event_id
    resp = client.post(f"/api/v1/events/{event_id}/redeliver", headers=m.headers)
    assert resp.status_code == 202
    receiver.answers.clear()
    drain(1)
    db.session.refresh(delivery)
    assert delivery.status == "succeeded" and delivery.attempts == 3


def test_410_disables_the_endpoint(app, receiver):
    receiver.answers.append(410)
    m = make_merchant()
    endpoint = add_endpoint(m.id, receiver.url, ["payment.succeeded"])
    db.session.commit()
    settle(m)
    drain(3)
    db.session.refresh(endpoint)
    assert endpoint.enabled is False and "410" in endpoint.disabled_reason
    assert db.session.query(CallbackDelivery).one().status == "dead"
    assert len(receiver.requests) == 1
    settle(m, statement_body(reference="again"))
    drain(2)
    assert len(receiver.requests) == 1  # nothing more is sent to a gone endpoint


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(app, receiver, status):
    receiver.answers.append(status)
    receiver.extra_headers["Retry-After"] = "120"
    app.config["PORTAL_CALLBACK_SCHEDULE"] = [0, 5, 5]
    m = make_merchant()
    add_endpoint(m.id, receiver.url, ["payment.succeeded"])
    db.session.commit()
    settle(m)
    before = datetime.now(UTC)
    run_due_jobs()
    delivery = db.session.query(CallbackDelivery).one()
    assert delivery.status == "pending"
    wait = delivery.next_attempt_at - before
    assert timedelta(seconds=110) < wait < timedelta(seconds=130)
    job = db.session.query(Job).filter_by(kind="deliver_callback").one()
    assert job.status == "queued" and job.run_at >= delivery.next_attempt_at - timedelta(seconds=1)


def test_rotation_signs_with_both_secrets(app, receiver):
    m = make_merchant()
    endpoint = add_endpoint(m.id, receiver.url, ["payment.succeeded"])
    db.session.commit()
    old = endpoint.secret
    new = rotate_secret(endpoint)
    db.session.commit()
    settle(m)
    run_due_jobs()
    [req] = receiver.requests
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(req.body, headers)["type"] == "payment.succeeded"
    assert Webhook(new).verify(req.body, headers)["type"] == "payment.succeeded"


def test_event_type_filter_and_disabled_endpoints(app, receiver):
    m = make_merchant()
    add_endpoint(m.id, receiver.url, ["payment_request.voided"])
    off = add_endpoint(m.id, receiver.url)
    off.enabled = False
    db.session.commit()
    settle(m)
    run_due_jobs()
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://172.16.5.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/hook",
    ],
)
def test_ssrf_refusals(url):
    with pytest.raises(UnsafeURL):
        resolve_callback_url(url, allow_private=False)


def test_public_address_is_allowed_and_pinned():
    scheme, host, port, ip = resolve_callback_url(
        "https://93.184.216.34:8443/x", allow_private=False
    )
    assert (scheme, host, port, ip) == ("https", "93.184.216.34", 8443, "93.184.216.34")


def test_private_address_refused_again_at_send_time(app, receiver):
    m = make_merchant()
    add_endpoint(m.id, receiver.url, ["payment.succeeded"])  # allowed in development
    db.session.commit()
    app.config["PORTAL_ALLOW_PRIVATE_CALLBACKS"] = False
    app.config["PORTAL_CALLBACK_SCHEDULE"] = [0]
    settle(m)
    run_due_jobs()
    assert receiver.requests == []
    attempt = db.session.query(CallbackAttempt).one()
    assert attempt.error.startswith("refused:")
    assert db.session.query(CallbackDelivery).one().status == "dead"


def test_add_endpoint_refuses_unsafe_url(app):
    from portal.errors import Invalid

    m = make_merchant()
    app.config["PORTAL_ALLOW_PRIVATE_CALLBACKS"] = False
    with pytest.raises(Invalid) as err:
        add_endpoint(m.id, "https://127.0.0.1/ledger")
    assert err.value.code == "unsafe_url"


def test_events_pull_api(app, client):
    m = make_merchant()
    other = make_merchant(name="Other")
    settle(m)
    settle(m, statement_body(reference="two"))
    settle(other)
    page = client.get("/api/v1/events?limit=3", headers=m.headers).json
    assert [e["sequence"] for e in page["data"]] == [1, 2, 3]
    assert page["has_more"] is True
    rest = client.get(
        f"/api/v1/events?starting_after={page['next_starting_after']}", headers=m.headers
    ).json
    assert [e["sequence"] for e in rest["data"]] == [4]
    assert rest["has_more"] is False
    paid = client.get("/api/v1/events?type=payment_request.paid", headers=m.headers).json
    assert {e["type"] for e in paid["data"]} == {"payment_request.paid"} and len(paid["data"]) == 2
    foreign = client.get("/api/v1/events", headers=other.headers).json["data"][0]["id"]
    resp = client.get(f"/api/v1/events?starting_after={foreign}", headers=m.headers)
    assert resp.status_code == 422
    assert client.post(f"/api/v1/events/{foreign}/redeliver", headers=m.headers).status_code == 404
    assert client.get("/api/v1/events?type=nope", headers=m.headers).status_code == 422


def test_endpoint_cli(app):
    m = make_merchant()
    runner = app.test_cli_runner()
    out = runner.invoke(
        args=[
            "merchant",
            "endpoint",
            "add",
            m.id,
            "http://127.0.0.1:9/hook",
            "--event",
            "payment.succeeded",
        ]
    )
    assert out.exit_code == 0, out.output
    added = json.loads(out.output)
    assert added["secret"].startswith("whsec_")
    listed = json.loads(runner.invoke(args=["merchant", "endpoint", "list", m.id]).output)
    assert listed[0]["event_types"] == ["payment.succeeded"] and "secret" not in listed[0]
    rotated = json.loads(
        runner.invoke(args=["merchant", "endpoint", "rotate-secret", added["id"]]).output
    )
    assert rotated["secret"] != added["secret"]
    runner.invoke(args=["merchant", "endpoint", "disable", added["id"]])
    assert db.session.get(CallbackEndpoint, added["id"]).enabled is False
    bad = runner.invoke(args=["merchant", "endpoint", "add", m.id, "ftp://x"])
    assert bad.exit_code != 0


def test_a_settlement_fans_out_its_two_events_with_one_read_of_the_endpoints(app, receiver):
    from sqlalchemy import event as sa_event

    from portal.ledger.models import Event
    from portal.merchants.models import Merchant

    m = make_merchant()
    every = add_endpoint(m.id, f"{receiver.url}/all")
    add_endpoint(m.id, f"{receiver.url}/paid", ["payment_request.paid"])  # the second endpoint
    db.session.commit()
    pr = make_request(m, statement_body())
    payment = start_payment(pr, None)
    db.session.commit()
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", note)
    try:
        fulfil_payment(payment.id)
        db.session.commit()
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", note)
    assert sum("FROM callback_endpoints" in s for s in seen) == 1
    # The receipt's number and both events' numbers: one UPDATE of the merchant's row.
    assert sum(s.startswith("UPDATE merchants") for s in seen) == 1
    db.session.expire_all()
    merchant = db.session.get(Merchant, m.id)
    assert (merchant.event_seq, merchant.receipt_seq) == (2, 1)
    events = {e.id: e for e in db.session.query(Event).filter_by(request_id=pr.id)}
    assert sorted((e.seq, e.type) for e in events.values()) == [
        (1, "payment.succeeded"), (2, "payment_request.paid")
    ]  # fmt: skip
    deliveries = {d.id: d for d in db.session.query(CallbackDelivery)}
    assert sorted((d.endpoint_id == every.id, events[d.event_id].type)
                  for d in deliveries.values()) == [
        (False, "payment_request.paid"), (True, "payment.succeeded"), (True, "payment_request.paid")
    ]  # fmt: skip
    # Each delivery has its job on its endpoint's queue, queued in the events' order.
    jobs = db.session.query(Job).filter_by(kind="deliver_callback").order_by(Job.id).all()
    assert [j.queue_key for j in jobs] == [
        f"endpoint:{deliveries[j.payload['delivery_id']].endpoint_id}" for j in jobs
    ]
    queued = [events[deliveries[j.payload["delivery_id"]].event_id].seq for j in jobs]
    assert queued == sorted(queued) and len(jobs) == 3
    assert db.session.get(type(payment), payment.id).receipt_number == "R-000001"
