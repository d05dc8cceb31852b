"""The reconciliation export (issue 15, item 5): payments, refunds and line allocations of
a date range, in the console (CSV) and over the API, with totals equal to the events."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from portal.extensions import db
from portal.payments.refunds import refund_payment
from portal.payments.services import fulfil_payment, start_payment
from tests.factories import make_merchant, make_request, statement_body
from tests.functional.merchant_console.helpers import console_user, sign_in
from tests.functional.support.test_console import https_client

TODAY = date.today().isoformat()


def _world():
    m, other = make_merchant(), make_merchant(name="Other")
    lines = [
        {"date": "2026-10-01", "description": "Bread", "amount": 5000, "reference": "T-1"},
        {"date": "2026-10-02", "description": "Wine", "amount": 7500, "reference": "T-2"},
    ]
    for merchant, reference in ((m, "R-1"), (other, "THEIRS")):
        pr = make_request(merchant, statement_body(
            reference=reference, amount=12500,
            statement={"balance": 12500, "lines": lines}))  # fmt: skip
        payment = start_payment(pr, None)
        fulfil_payment(payment.id)
        db.session.commit()
        if merchant is m:
            refund_payment(m.merchant, payment.id, 2000, "stale")
            db.session.commit()
            mine = payment
    return m, mine


def _events_totals(client, m):
    events = client.get("/api/v1/events", headers=m.headers, query_string={"limit": 500}).json
    paid = sum(e["data"]["payment"]["amount"] for e in events["data"]
               if e["type"] == "payment.succeeded")  # fmt: skip
    refunded = sum(e["data"]["refund"]["amount"] for e in events["data"]
                   if e["type"] == "payment.refunded")  # fmt: skip
    return paid, refunded


def test_the_api_export_matches_the_events(app, client):
    m, payment = _world()
    resp = client.get("/api/v1/reconciliation", headers=m.headers,
                      query_string={"since": TODAY, "until": TODAY})  # fmt: skip
    assert resp.status_code == 200, resp.json
    body = resp.json
    paid, refunded = _events_totals(client, m)
    assert (paid, refunded) == (12500, 2000)
    assert body["totals"] == {"payments": paid, "refunds": -refunded, "net": paid - refunded}
    rows = list(csv.DictReader(io.StringIO(body["csv"])))
    kinds = [r["record"] for r in rows]
    assert kinds.count("payment") == 1 and kinds.count("refund") == 1
    allocations = [(r["line_reference"], int(r["amount"]), r["refund_id"] != "")
                   for r in rows if r["record"] == "allocation"]  # fmt: skip
    # oldest line first; the refund undoes the newest settled line first (docs/callbacks.md)
    assert sum(a for _, a, _ in allocations) == 12500 - 2000
    assert {ref for ref, _, _ in allocations} == {"T-1", "T-2"}
    assert "THEIRS" not in body["csv"]  # never another merchant's
    assert all(r["payment_id"] == payment.id for r in rows)
    # other days: nothing; defaults: the last 30 days
    before = (date.today() - timedelta(days=3)).isoformat()
    empty = client.get("/api/v1/reconciliation", headers=m.headers,
                       query_string={"since": before, "until": before}).json  # fmt: skip
    assert empty["totals"]["payments"] == 0 and empty["csv"].count("\n") == 1
    assert client.get("/api/v1/reconciliation", headers=m.headers).json["totals"]["net"] == 10500
    for query in ({"since": TODAY, "until": before}, {"since": "2020-01-01"},
                  {"since": "yesterday"}):  # fmt: skip
        resp = client.get("/api/v1/reconciliation", headers=m.headers, query_string=query)
        assert resp.status_code == 422, query


def test_the_console_downloads_the_same_csv(app, client):
    m, _ = _world()
    owner = console_user(m.merchant, "owner@shop.test")
    browser = https_client(app)
    assert sign_in(browser, owner).status_code == 303
    page = browser.get("/merchant/reconciliation")
    assert page.status_code == 200 and 'name="since"' in page.text
    download = browser.get("/merchant/reconciliation", query_string={"since": TODAY,
                                                                      "until": TODAY})  # fmt: skip
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    api = client.get("/api/v1/reconciliation", headers=m.headers,
                     query_string={"since": TODAY, "until": TODAY}).json  # fmt: skip
    assert download.text == api["csv"]
    bad = browser.get("/merchant/reconciliation", query_string={"since": TODAY, "until": "x"})
    assert bad.status_code == 422
