"""``/api/v1/payments`` (list, read, refunds) and ``/api/v1/merchant`` (read, change)."""

from __future__ import annotations

from portal.extensions import db
from portal.merchants.models import Merchant
from portal.payments.refunds import refund_payment
from portal.payments.services import fulfil_payment, start_payment
from tests.factories import make_merchant, make_request, statement_body


def _paid(m, reference):
    pr = make_request(m, statement_body(reference=reference))
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()
    return pr, payment


def test_payments_are_listed_read_and_show_their_refunds(app, client):
    m, other = make_merchant(), make_merchant(name="Other")
    _, first = _paid(m, "A-1")
    pr2, second = _paid(m, "A-2")
    _, theirs = _paid(other, "B-1")
    refund_payment(m.merchant, second.id, 500, "broken")
    db.session.commit()
    page = client.get("/api/v1/payments", headers=m.headers).json
    assert [p["id"] for p in page["data"]] == [second.id, first.id]
    assert page["data"][0]["amount_refunded"] == 500
    one = client.get("/api/v1/payments", query_string={"limit": 1}, headers=m.headers).json
    assert one["has_more"] and one["next_starting_after"] == second.id
    rest = client.get("/api/v1/payments", headers=m.headers,
                      query_string={"starting_after": second.id}).json  # fmt: skip
    assert [p["id"] for p in rest["data"]] == [first.id]
    wanted = {"request_id": pr2.id, "status": "partially_refunded"}
    only = client.get("/api/v1/payments", headers=m.headers, query_string=wanted).json
    assert [p["id"] for p in only["data"]] == [second.id]
    assert client.get(f"/api/v1/payments/{first.id}", headers=m.headers).json["status"] == (
        "succeeded"
    )
    refunds = client.get(f"/api/v1/payments/{second.id}/refunds", headers=m.headers).json
    assert [(r["amount"], r["payment_id"]) for r in refunds["data"]] == [(500, second.id)]
    # another merchant's payment is a 404, as a cursor it is refused
    for path in (f"/api/v1/payments/{theirs.id}", f"/api/v1/payments/{theirs.id}/refunds"):
        resp = client.get(path, headers=m.headers)
        assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    resp = client.get("/api/v1/payments", headers=m.headers,
                      query_string={"starting_after": theirs.id})  # fmt: skip
    assert resp.status_code == 422 and resp.json["error"]["code"] == "invalid_cursor"
    resp = client.get("/api/v1/payments", headers=m.headers, query_string={"status": "paid"})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "status"


def test_the_merchant_reads_and_changes_its_settings(app, client):
    m = make_merchant(name="Shop")
    got = client.get("/api/v1/merchant", headers=m.headers).json
    assert got["id"] == m.id and got["currency"] == "EUR" and got["object"] == "merchant"
    changed = client.patch("/api/v1/merchant", headers=m.headers, json={
        "display_name": "La Boutique", "support_email": "Help@Shop.example",
        "support_phone": "+32 2 555 01 23", "default_locale": "fr",
        "embed_origins": ["https://shop.example/", "https://shop.example"],
    })  # fmt: skip
    assert changed.status_code == 200, changed.json
    body = changed.json
    assert (body["display_name"], body["support_email"], body["support_phone"]) == (
        "La Boutique", "help@shop.example", "+3225550123")  # fmt: skip
    assert body["embed_origins"] == ["https://shop.example"] and body["default_locale"] == "fr"
    db.session.expire_all()
    assert db.session.get(Merchant, m.id).display_name == "La Boutique"
    # only what is sent changes; null removes an optional setting, never a required one
    resp = client.patch("/api/v1/merchant", headers=m.headers, json={"support_phone": None})
    assert resp.json["support_phone"] is None and resp.json["display_name"] == "La Boutique"
    for bad, field in (
        ({"display_name": None}, "display_name"),
        ({"display_name": ""}, "display_name"),
        ({"support_email": "nope"}, "support_email"),
        ({"default_locale": "it"}, "default_locale"),
        ({"embed_origins": ["http://shop.example"]}, "embed_origins[0]"),
        ({"ceiling": 5_000_001}, "ceiling"),  # above the operator's 50,000.00
        ({"ceiling": 0}, "ceiling"),
        ({"ceiling": "100.00"}, "ceiling"),  # minor units, an integer
    ):
        resp = client.patch("/api/v1/merchant", headers=m.headers, json=bad)
        assert resp.status_code == 422, (bad, resp.json)
        assert resp.json["error"]["field"] == field, (bad, resp.json)
    db.session.expire_all()
    assert db.session.get(Merchant, m.id).support_email == "help@shop.example"
    # The ceiling is the merchant's own, up to the operator's maximum (PORTAL_MAX_CEILING).
    resp = client.patch("/api/v1/merchant", headers=m.headers, json={"ceiling": 5_000_000})
    assert resp.status_code == 200 and resp.json["ceiling"] == 5_000_000
    over = client.patch("/api/v1/merchant", headers=m.headers, json={"ceiling": 5_000_001})
    assert over.json["error"]["code"] == "ceiling_above_maximum"
    assert "50,000.00" in over.json["error"]["message"]
    big = {"date": "2026-10-03", "description": "Catering", "amount": 4_000_000}
    body = statement_body(amount=4_000_000, statement={
        "period_start": "2026-10-01", "period_end": "2026-10-31", "balance": 4_000_000,
        "lines": [big]})  # fmt: skip
    assert client.post("/api/v1/payment-requests", json=body, headers=m.headers).status_code == 201
