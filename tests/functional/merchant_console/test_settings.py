"""The shop's settings and API keys in the console (issue 15, item 6, in part)."""

from __future__ import annotations

import re

from sqlalchemy import select
from standardwebhooks import Webhook

from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.models import CallbackDelivery, CallbackEndpoint
from portal.merchants.models import ApiKey, Merchant
from portal.payments.services import fulfil_payment, start_payment
from portal.support.models import AuditLog
from tests.factories import make_merchant, make_request, statement_body
from tests.functional.merchant_console.helpers import console_user, csrf, sign_in
from tests.functional.support.test_console import https_client
from tests.servers import HTTPRecorder

FORM = {"display_name": "La Boutique", "support_email": "Help@Shop.example",
        "support_phone": "02 555 01 23", "country": "be", "time_zone": "Europe/Paris",
        "default_locale": "fr", "accent_color": "#0b5394", "ceiling": "20 000,00",
        "embed_origins": "https://shop.example\nhttps://www.shop.example/\n"}  # fmt: skip


def test_the_owner_changes_the_settings_with_the_apis_rules(app, client):
    m = make_merchant(name="Shop")
    owner = console_user(m.merchant, "owner@shop.test")
    browser = https_client(app)
    sign_in(browser, owner)
    token = csrf(browser, "/merchant/settings")
    assert browser.post("/merchant/settings", data={"csrf_token": token, **FORM}).status_code == 303
    db.session.expire_all()
    shop = db.session.get(Merchant, m.id)
    assert (shop.display_name, shop.support_email, shop.support_phone, shop.default_locale,
            shop.accent_color) == ("La Boutique", "help@shop.example", "+3225550123", "fr",
                                   "#0b5394")  # fmt: skip
    assert shop.embed_origins == ["https://shop.example", "https://www.shop.example"]
    assert (shop.country, shop.time_zone) == ("BE", "Europe/Paris")  # "02 …" read as Belgian
    assert shop.ceiling == 2_000_000
    assert client.get("/api/v1/merchant", headers=m.headers).json["display_name"] == "La Boutique"
    for bad, message in (
        ({"accent_color": "#777777"}, "Neither white nor black"),  # fails WCAG AA both ways
        ({"accent_color": "red"}, "Choose a colour"),
        ({"support_email": "nope"}, "valid e-mail"),
        ({"display_name": ""}, "not accepted"),
        ({"embed_origins": "http://shop.example"}, "https address"),
        ({"country": "XX", "support_phone": "+32 2 555 01 23"}, "two-letter country"),
        ({"time_zone": "Mars/Olympus"}, "time zone such as"),
        ({"ceiling": "60 000"}, "above the portal operator"),
        ({"ceiling": "lots"}, "as a number"),
    ):
        resp = browser.post("/merchant/settings", data={"csrf_token": token, **FORM, **bad})
        assert resp.status_code == 422 and message in resp.text, bad
    db.session.expire_all()
    assert db.session.get(Merchant, m.id).accent_color == "#0b5394"
    audit = db.session.scalars(select(AuditLog).where(
        AuditLog.action == "merchant.settings.changed")).one()  # fmt: skip
    assert audit.details["changes"]["display_name"] == ["Shop", "La Boutique"]
    # the API refuses the same colour with the same code
    resp = client.patch("/api/v1/merchant", headers=m.headers, json={"accent_color": "#777777"})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "accent_contrast"


def test_api_keys_created_once_and_revoked(app, client):
    m = make_merchant()
    owner = console_user(m.merchant, "owner@shop.test")
    clerk = console_user(m.merchant, "clerk@shop.test", "staff")
    browser = https_client(app)
    sign_in(browser, owner)
    token = csrf(browser, "/merchant/settings")
    page = browser.post("/merchant/keys", data={"csrf_token": token, "label": "till 2"})
    assert page.status_code == 200
    secret = re.search(r'value="(sk_portal_[^"]+)"', page.text).group(1)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/merchant", headers=bearer).status_code == 200
    assert secret not in browser.get("/merchant/settings").text  # shown once
    key = db.session.scalars(select(ApiKey).where(ApiKey.label == "till 2")).one()
    assert "last used" in browser.get("/merchant/settings").text
    resp = browser.post(f"/merchant/keys/{key.id}/revoke", data={"csrf_token": token})
    assert resp.status_code == 303
    assert client.get("/api/v1/merchant", headers=bearer).status_code == 401
    # staff see no settings and make no keys
    staff = https_client(app)
    sign_in(staff, clerk)
    own = csrf(staff, "/merchant/")
    assert staff.get("/merchant/settings").status_code == 403
    assert staff.post("/merchant/keys", data={"csrf_token": own}).status_code == 403
    assert len(db.session.scalars(select(ApiKey).where(ApiKey.merchant_id == m.id)).all()) == 2


def test_callback_endpoints_in_the_console(app):
    receiver = HTTPRecorder(lambda req: (200, {}, b"ok")).start()
    try:
        m = make_merchant()
        browser = https_client(app)
        sign_in(browser, console_user(m.merchant, "owner@shop.test"))
        token = csrf(browser, "/merchant/settings")
        refused = browser.post("/merchant/endpoints", data={"csrf_token": token,
                                                            "url": "ftp://x.example/"})  # fmt: skip
        assert refused.status_code == 422
        page = browser.post("/merchant/endpoints", data={"csrf_token": token, "url": receiver.url})
        assert page.status_code == 200
        endpoint = db.session.scalars(select(CallbackEndpoint)).one()
        assert endpoint.secret in page.text  # shown once
        assert endpoint.secret not in browser.get("/merchant/settings").text
        path = f"/merchant/endpoints/{endpoint.id}"
        assert browser.post(path, data={"csrf_token": token, "do": "test"}).status_code == 303
        run_due_jobs()
        [test] = receiver.requests
        headers = {k.lower(): v for k, v in test.headers.items()}
        assert Webhook(endpoint.secret).verify(test.body.decode(), headers)["type"] == (
            "endpoint.test"
        )
        rotated = browser.post(path, data={"csrf_token": token, "do": "rotate"})
        db.session.expire_all()
        endpoint = db.session.get(CallbackEndpoint, endpoint.id)
        assert endpoint.secret in rotated.text and endpoint.previous_secret
        # a payment's callbacks are in the log, and one can be sent again
        pr = make_request(m, statement_body())
        fulfil_payment(start_payment(pr, None).id)
        db.session.commit()
        run_due_jobs()
        delivery = db.session.scalars(select(CallbackDelivery)).first()
        assert delivery.event_id in browser.get("/merchant/settings").text
        before = len(receiver.requests)
        replay = browser.post(f"/merchant/events/{delivery.event_id}/replay",
                              data={"csrf_token": token})  # fmt: skip
        assert replay.status_code == 303
        run_due_jobs()
        assert len(receiver.requests) == before + 1
        assert browser.post(path, data={"csrf_token": token, "do": "disable"}).status_code == 303
        db.session.expire_all()
        assert db.session.get(CallbackEndpoint, endpoint.id).enabled is False
    finally:
        receiver.stop()
