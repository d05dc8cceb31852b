"""``Idempotency-Key``: replays, conflicts, and concurrent identical requests on PostgreSQL."""

from __future__ import annotations

import threading

from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from tests.factories import make_merchant, statement_body

URL = "/api/v1/payment-requests"


def test_same_key_same_body_same_answer(client, merchant):
    headers = {**merchant.headers, "Idempotency-Key": "order-42"}
    first = client.post(URL, json=statement_body(), headers=headers)
    second = client.post(URL, json=statement_body(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json == second.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert db.session.query(PaymentRequest).count() == 1


def test_same_key_other_body_is_409(client, merchant):
    headers = {**merchant.headers, "Idempotency-Key": "order-43"}
    assert client.post(URL, json=statement_body(), headers=headers).status_code == 201
    resp = client.post(URL, json=statement_body(amount=100), headers=headers)
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "idempotency_key_reused"
    assert db.session.query(PaymentRequest).count() == 1


def test_keys_are_per_merchant(client, merchant):
    other = make_merchant(name="Other")
    a = client.post(
        URL, json=statement_body(), headers={**merchant.headers, "Idempotency-Key": "k"}
    )
    b = client.post(URL, json=statement_body(), headers={**other.headers, "Idempotency-Key": "k"})
    assert a.status_code == b.status_code == 201
    assert a.json["id"] != b.json["id"]


def test_failed_request_does_not_burn_the_key(client, merchant):
    headers = {**merchant.headers, "Idempotency-Key": "retry-me"}
    bad = client.post(URL, json=statement_body(amount=0), headers=headers)
    assert bad.status_code == 422
    good = client.post(URL, json=statement_body(), headers=headers)
    assert good.status_code == 201


def test_overlong_key_is_400(client, merchant):
    resp = client.post(
        URL, json=statement_body(), headers={**merchant.headers, "Idempotency-Key": "k" * 256}
    )
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_idempotency_key"


def test_void_is_idempotent_with_a_key(client, merchant):
    pr_id = client.post(URL, json=statement_body(), headers=merchant.headers).json["id"]
    headers = {**merchant.headers, "Idempotency-Key": "void-1"}
    first = client.post(f"{URL}/{pr_id}/void", headers=headers)
    second = client.post(f"{URL}/{pr_id}/void", headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"


def test_concurrent_identical_requests_create_one_object(pg_app):
    """Ten threads, one key, one body, real PostgreSQL locks: one request, ten equal answers."""
    m = make_merchant()
    body = statement_body()
    barrier = threading.Barrier(10)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def call() -> None:
        client = pg_app.test_client()
        barrier.wait()
        resp = client.post(URL, json=body, headers={**m.headers, "Idempotency-Key": "race"})
        with lock:
            answers.append((resp.status_code, resp.json))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 10
    assert {status for status, _ in answers} == {201}
    assert len({body["id"] for _, body in answers}) == 1
    db.session.expire_all()
    assert db.session.query(PaymentRequest).count() == 1
