"""Reading, listing and voiding requests; authentication and merchant scoping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.db_types import utcnow
from portal.extensions import db
from portal.ledger.models import Event
from portal.merchants.services import revoke_api_key
from portal.payment_requests.models import PaymentRequest
from tests.factories import make_merchant, make_request, statement_body, wallet_body

URL = "/api/v1/payment-requests"


def test_get_own_request(client, merchant):
    pr = make_request(merchant)
    resp = client.get(f"{URL}/{pr.id}", headers=merchant.headers)
    assert resp.status_code == 200
    assert resp.json["id"] == pr.id
    assert resp.json["reference"] == "STMT-1"


def test_another_merchants_request_is_404(client, merchant):
    other = make_merchant(name="Other")
    pr = make_request(other)
    for method, path in [
        ("get", f"{URL}/{pr.id}"),
        ("post", f"{URL}/{pr.id}/void"),
    ]:
        resp = getattr(client, method)(path, headers=merchant.headers)
        assert resp.status_code == 404
        assert resp.json["error"]["code"] == "not_found"
    assert db.session.get(PaymentRequest, pr.id).status == "open"


def test_unknown_request_is_404(client, merchant):
    resp = client.get(f"{URL}/pr_doesnotexist", headers=merchant.headers)
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"


def test_missing_or_bad_key_is_401(client, merchant):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": merchant.api_key}):
        resp = client.get(URL, headers=headers)
        assert resp.status_code == 401
        assert resp.json["error"]["code"] == "unauthorized"
        assert "Bearer" in resp.headers["WWW-Authenticate"]


def test_revoked_key_stops_working(client, merchant):
    assert client.get(URL, headers=merchant.headers).status_code == 200
    key = merchant.merchant.api_keys[0]
    assert key.last_used_at is not None
    revoke_api_key(key.id)
    db.session.commit()
    assert client.get(URL, headers=merchant.headers).status_code == 401


def test_list_is_paginated_newest_first(client, merchant):
    ids = []
    base = utcnow()
    for i in range(5):
        pr = make_request(merchant, statement_body(reference=f"R{i}"))
        pr.created_at = base + timedelta(seconds=i)
        ids.append(pr.id)
    db.session.commit()
    newest_first = list(reversed(ids))

    page1 = client.get(f"{URL}?limit=2", headers=merchant.headers).json
    assert [r["id"] for r in page1["data"]] == newest_first[:2]
    assert page1["has_more"] is True
    page2 = client.get(
        f"{URL}?limit=2&starting_after={page1['next_starting_after']}", headers=merchant.headers
    ).json
    assert [r["id"] for r in page2["data"]] == newest_first[2:4]
    page3 = client.get(
        f"{URL}?limit=2&starting_after={page2['next_starting_after']}", headers=merchant.headers
    ).json
    assert [r["id"] for r in page3["data"]] == newest_first[4:]
    assert page3["has_more"] is False and page3["next_starting_after"] is None


def test_list_filters(client, merchant):
    make_request(merchant, statement_body(reference="A"))
    b = make_request(merchant, statement_body(reference="B"))
    client.post(f"{URL}/{b.id}/void", headers=merchant.headers)
    by_ref = client.get(f"{URL}?reference=A", headers=merchant.headers).json["data"]
    assert [r["reference"] for r in by_ref] == ["A"]
    void = client.get(f"{URL}?status=void", headers=merchant.headers).json["data"]
    assert [r["id"] for r in void] == [b.id]


def test_list_never_shows_other_merchants(client, merchant):
    other = make_merchant(name="Other")
    make_request(other)
    assert client.get(URL, headers=merchant.headers).json["data"] == []


def test_list_bad_parameters_are_422(client, merchant):
    other_pr = make_request(make_merchant(name="Other"))
    for query, field in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("status=nope", "status"),
        (f"starting_after={other_pr.id}", "starting_after"),
    ]:
        resp = client.get(f"{URL}?{query}", headers=merchant.headers)
        assert resp.status_code == 422, query
        assert resp.json["error"]["field"] == field


def test_void_open_request_writes_event(client, merchant):
    pr = make_request(merchant)
    resp = client.post(f"{URL}/{pr.id}/void", headers=merchant.headers)
    assert resp.status_code == 200
    assert resp.json["status"] == "void" and resp.json["voided_at"]
    events = db.session.query(Event).filter_by(request_id=pr.id).all()
    assert [e.type for e in events] == ["payment_request.voided"]
    assert events[0].seq == 1
    again = client.post(f"{URL}/{pr.id}/void", headers=merchant.headers)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "already_void"


def test_void_refused_once_something_is_paid(client, merchant):
    pr = make_request(merchant)
    pr.amount_paid = 100
    pr.status = "partially_paid"
    db.session.commit()
    resp = client.post(f"{URL}/{pr.id}/void", headers=merchant.headers)
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "request_not_voidable"


def test_void_all_of_a_customer(client, merchant):
    a = make_request(merchant, statement_body(reference="A"))
    b = make_request(merchant, wallet_body())  # customer C-2
    c = make_request(merchant, statement_body(reference="C"))
    paid = make_request(merchant, statement_body(reference="P"))
    paid.status, paid.amount_paid = "paid", paid.amount
    db.session.commit()
    resp = client.post(f"{URL}/void", json={"customer_reference": "C-1"}, headers=merchant.headers)
    assert resp.status_code == 200, resp.json
    assert resp.json["count"] == 2
    assert set(resp.json["ids"]) == {a.id, c.id}
    db.session.expire_all()
    assert db.session.get(PaymentRequest, b.id).status == "open"
    assert db.session.get(PaymentRequest, paid.id).status == "paid"
    seqs = [e.seq for e in db.session.query(Event).order_by(Event.seq)]
    assert seqs == [1, 2]


def test_void_customer_requires_reference(client, merchant):
    resp = client.post(f"{URL}/void", json={}, headers=merchant.headers)
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "customer_reference"


def test_unknown_api_route_and_method_are_json(client, merchant):
    resp = client.get("/api/v1/nothing-here", headers=merchant.headers)
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"
    resp = client.delete(URL, headers=merchant.headers)
    assert resp.status_code == 405
    assert resp.json["error"]["code"] == "method_not_allowed"


def test_oversized_body_is_413_json(client, merchant):
    resp = client.post(
        URL, data=b"{" + b" " * (1024 * 1024 + 10) + b"}", content_type="application/json",
        headers=merchant.headers,
    )  # fmt: skip
    assert resp.status_code == 413
    assert resp.json["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("path", "param"),
    [("/api/v1/events", "startingafter"), ("/api/v1/events", "types"),
     ("/api/v1/payment-requests", "statuss")],
)  # fmt: skip
def test_unknown_query_parameters_are_refused_like_unknown_body_fields(
    client, merchant, path, param
):
    resp = client.get(path, query_string={param: "x"}, headers=merchant.headers)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "unknown_field"
    assert resp.json["error"]["field"] == param
    # The known ones still work, empty values included.
    assert client.get(path, query_string={"limit": "5", "starting_after": ""},
                      headers=merchant.headers).status_code == 200  # fmt: skip
