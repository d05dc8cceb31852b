"""The account link: from the API (``POST /api/v1/customers/{reference}/link``) and from
the merchant console's request page."""

from __future__ import annotations

from portal.extensions import db
from portal.links import account_from_token
from tests.factories import deposit_body, make_merchant, make_request, statement_body
from tests.functional.merchant_console.helpers import console_user, sign_in
from tests.functional.support.test_console import https_client


def test_the_api_makes_the_customers_link(app, client):
    m = make_merchant()
    other = make_merchant(name="Other")
    mine = make_request(m, statement_body(customer={"name": "Ann", "reference": "C 1 é"}))
    usd = make_request(m, deposit_body(customer={"reference": "C 1 é"}))
    usd.currency = "USD"  # made before the shop changed its currency: paid from its own link
    db.session.commit()
    make_request(other, statement_body(customer={"reference": "C 1 é"}))
    answer = client.post("/api/v1/customers/C%201%20%C3%A9/link", headers=m.headers)
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["object"] == "customer_link" and body["customer_reference"] == "C 1 é"
    assert body["currency"] == "EUR" and body["open_requests"] == [mine.id, usd.id]
    token = body["url"].rsplit("/a/", 1)[1]
    assert account_from_token(token) == (m.id, "C 1 é")
    page = client.get(f"/a/{token}?lang=en")
    assert page.status_code == 200 and "STMT-1" in page.text
    assert "In another currency" in page.text and "DEP-1" in page.text
    again = client.post("/api/v1/customers/C%201%20%C3%A9/link", headers=m.headers)
    assert again.json["url"] == body["url"]  # the same customer, the same link


def test_the_api_refuses_what_is_not_a_reference(app, client):
    m = make_merchant()
    too_long = client.post(f"/api/v1/customers/{'x' * 101}/link", headers=m.headers)
    assert too_long.status_code == 422 and too_long.json["error"]["code"] == "too_long"
    blank = client.post("/api/v1/customers/%20/link", headers=m.headers)
    assert blank.status_code == 422
    assert client.post("/api/v1/customers/C-1/link").status_code == 401
    body = client.post("/api/v1/customers/C-1/link", headers=m.headers, data="[1]")
    assert body.status_code == 400


def test_the_console_offers_the_account_page(app):
    m = make_merchant()
    pr = make_request(m, statement_body(customer={"name": "Ann", "reference": "CUST-A"}))
    anonymous = make_request(m, statement_body(reference="NOBODY", customer={"name": "Bo"}))
    client = https_client(app)
    assert sign_in(client, console_user(m.merchant, "owner@one.test")).status_code == 303
    page = client.get(f"/merchant/requests/{pr.id}").text
    assert "account page" in page and "/a/" in page
    assert "/a/" not in client.get(f"/merchant/requests/{anonymous.id}").text
