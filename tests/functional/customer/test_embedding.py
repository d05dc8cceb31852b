"""Embedding: the customer's forms carry a token bound to their link, not a session
cookie's, so they work inside a merchant's frame; what is refused stays refused."""

from __future__ import annotations

import re

from portal.extensions import db
from portal.links import form_token, link_token
from portal.merchants.models import Merchant
from portal.payments.models import Payment
from tests.factories import make_request, statement_body
from tests.functional.customer.test_pages import csrf, page

SHOP = "https://shop.example.com"


def _embedding(merchant):
    db.session.get(Merchant, merchant.id).embed_origins = [SHOP]
    db.session.commit()


def _english():
    body = statement_body()
    body["customer"]["locale"] = "en"
    return body


def test_the_pages_set_no_session_cookie_and_forms_carry_the_links_token(client, merchant):
    pr = make_request(merchant, _english())
    resp = page(client, pr)
    assert "session=" not in resp.headers.get("Set-Cookie", "")
    assert csrf(resp) == form_token(pr.id)
    # a fresh browser (no cookie at all) can pay with the page's token: a frame's case
    client.delete_cookie("session")
    go = client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": csrf(resp)})
    assert go.status_code == 303


def test_a_missing_wrong_or_other_links_token_is_refused(client, merchant):
    pr = make_request(merchant, _english())
    other = make_request(merchant, statement_body(reference="OTHER"))
    url = f"/p/{link_token(pr.id)}/pay"
    for token in (None, "", "nonsense", form_token(other.id), form_token(pr.id) + "x"):
        data = {} if token is None else {"csrf_token": token}
        assert client.post(url, data=data).status_code == 400, token
    assert db.session.query(Payment).count() == 0


def test_a_form_posted_from_another_site_is_refused(client, merchant):
    pr = make_request(merchant, _english())
    token = form_token(pr.id)
    url = f"/p/{link_token(pr.id)}/pay"
    refused = client.post(url, data={"csrf_token": token}, headers={"Origin": SHOP})
    assert refused.status_code == 400
    ours = client.post(url, data={"csrf_token": token}, headers={"Origin": "http://localhost"})
    assert ours.status_code == 303


def test_the_token_survives_a_key_rotation(app, client, merchant):
    pr = make_request(merchant, _english())
    old = form_token(pr.id)
    app.config["PORTAL_SECRET_KEYS"] = [
        "a-new-key-0123456789abcdef0123456789",
        *app.config["PORTAL_SECRET_KEYS"],
    ]
    assert form_token(pr.id) != old
    resp = client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": old})
    assert resp.status_code == 303


def test_framing_is_allowed_only_for_the_listed_origins_even_on_errors(client, merchant):
    pr = make_request(merchant, _english())
    assert "frame-ancestors 'none'" in page(client, pr).headers["Content-Security-Policy"]
    assert "frame.js" not in page(client, pr).text
    _embedding(merchant)
    resp = page(client, pr)
    assert f"frame-ancestors {SHOP};" in resp.headers["Content-Security-Policy"]
    frame_script = r'frame\.js" nonce="[^"]+" data-origins="https://shop\.example\.com"'
    assert re.search(frame_script, resp.text)
    refused = client.post(f"/p/{link_token(pr.id)}/pay", data={})
    assert refused.status_code == 400
    assert f"frame-ancestors {SHOP};" in refused.headers["Content-Security-Policy"]


def test_the_language_choice_is_a_partitioned_cookie_only_where_framing_is_allowed(
    client, merchant
):
    pr = make_request(merchant, _english())
    plain = page(client, pr, "?lang=fr", base_url="https://localhost")
    assert "SameSite=Lax" in plain.headers["Set-Cookie"]
    assert "Partitioned" not in plain.headers["Set-Cookie"]
    _embedding(merchant)
    framed = page(client, pr, "?lang=nl", base_url="https://localhost")
    cookie = framed.headers["Set-Cookie"]
    assert "SameSite=None" in cookie and "Secure" in cookie and "Partitioned" in cookie


def test_the_paid_result_page_says_so_to_the_frame(client, merchant, smtp):
    from tests.functional.customer.test_pages import follow, pay

    _embedding(merchant)
    pr = make_request(merchant, _english())
    result = follow(client, pay(client, pr))
    payment = db.session.query(Payment).one()
    assert f'data-portal-paid data-request="{pr.id}" data-payment="{payment.id}"' in result.text
    assert 'data-amount="12500" data-currency="EUR" data-status="paid"' in result.text
