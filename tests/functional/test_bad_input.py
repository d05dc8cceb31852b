"""Input no database could store gets a clear 400, never a 500, and writes nothing."""

from __future__ import annotations

import re

from portal.extensions import db
from portal.links import link_token
from portal.payments.models import Payment
from tests.factories import make_request, statement_body


def test_nul_characters_are_refused_everywhere(client, merchant):
    listed = client.get("/api/v1/events?starting_after=a%00b", headers=merchant.headers)
    assert listed.status_code == 400 and listed.json["error"]["code"] == "bad_request"
    body = statement_body(reference="nul\u0000here")
    created = client.post("/api/v1/payment-requests", json=body, headers=merchant.headers)
    assert created.status_code == 400
    pr = make_request(merchant)
    page = client.get(f"/p/{link_token(pr.id)}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    paid = client.post(
        f"/p/{link_token(pr.id)}/pay", data={"csrf_token": csrf, "email": "a\x00@b.c"}
    )
    assert paid.status_code == 400
    assert "<html" in paid.text.lower() and "Traceback" not in paid.text
    assert db.session.query(Payment).count() == 0


def test_amounts_beyond_any_integer_column_are_refused(client, merchant):
    body = statement_body(amount=2**70)
    resp = client.post("/api/v1/payment-requests", json=body, headers=merchant.headers)
    assert resp.status_code in (400, 422)
    assert resp.json["error"]["code"]
