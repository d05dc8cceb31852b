"""Stripe Connect onboarding from the merchant console: localstripe has no Accounts, so the
SDK's requests are recorded at the HTTP boundary (as for payment method domains)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from sqlalchemy import select

from portal.extensions import db
from portal.merchants.models import Merchant
from portal.support.models import AuditLog
from tests.factories import make_merchant
from tests.functional.merchant_console.helpers import console_user, csrf, sign_in
from tests.functional.stripe_provider.test_wallets import _domain
from tests.functional.support.test_console import https_client
from tests.servers import HTTPRecorder, json_response

LINK = "https://connect.stripe.com/setup/e/acct_shop1/s3cr3t"
ACCOUNT = {
    "id": "acct_shop1",
    "object": "account",
    "charges_enabled": True,
    "payouts_enabled": False,
    "details_submitted": True,
    "requirements": {"currently_due": ["external_account"], "past_due": ["tos_acceptance.date"]},
}


def _stripe(req):
    if req.method == "POST" and req.path == "/v1/accounts":
        return json_response(200, {**ACCOUNT, "charges_enabled": False})
    if req.method == "POST" and req.path == "/v1/account_links":
        return json_response(200, {"object": "account_link", "url": LINK, "expires_at": 1})
    if req.method == "GET" and req.path.startswith("/v1/accounts/acct_shop1"):
        return json_response(200, ACCOUNT)
    if req.method == "POST" and req.path == "/v1/payment_method_domains":
        return json_response(200, _domain(req))
    return json_response(404, {"error": {"type": "invalid_request_error", "message": "no"}})


def _owner(app, recorder):
    app.config.update(
        PORTAL_PAYMENT_PROVIDER="stripe",
        PORTAL_STRIPE_SECRET_KEY="sk_test_x",
        PORTAL_STRIPE_API_BASE=recorder.url,
        PORTAL_BASE_URL="https://pay.example.com",
    )
    m = make_merchant(name="Connect Shop", support_email="owner@shop.test")
    owner = console_user(m.merchant, "owner@shop.test")
    browser = https_client(app)
    sign_in(browser, owner)
    return m, browser


def test_the_owner_connects_a_stripe_account_through_an_account_link(app):
    recorder = HTTPRecorder(_stripe).start()
    try:
        m, browser = _owner(app, recorder)
        token = csrf(browser, "/merchant/settings")  # no account yet: no call to Stripe
        assert recorder.requests == []
        resp = browser.post("/merchant/connect", data={"csrf_token": token})
        assert resp.status_code == 303 and resp.headers["Location"] == LINK
        created, link = recorder.requests
        page = browser.get("/merchant/connect/return")
        retrieved, registered = recorder.requests[2:]
        again = browser.post("/merchant/connect", data={"csrf_token": token})
    finally:
        recorder.stop()
    assert created.method == "POST" and created.path == "/v1/accounts"
    sent = parse_qs(created.body.decode())
    assert sent["type"] == ["express"] and sent["country"] == ["BE"]
    assert sent["metadata[merchant_id]"] == [m.id]
    assert sent["business_profile[name]"] == ["Connect Shop"]
    assert sent["email"] == ["owner@shop.test"]
    assert created.headers["Idempotency-Key"] == f"portal-acct-{m.id}"
    assert "Stripe-Account" not in created.headers  # made by the platform
    assert link.path == "/v1/account_links"
    params = parse_qs(link.body.decode())
    assert params["account"] == ["acct_shop1"] and params["type"] == ["account_onboarding"]
    assert params["return_url"][0].startswith("https://")
    assert params["return_url"][0].endswith("/merchant/connect/return")
    assert params["refresh_url"][0].endswith("/merchant/connect/refresh")
    db.session.expire_all()
    # Charges enabled when the owner came back: the account takes the shop's payments now.
    shop = db.session.get(Merchant, m.id)
    assert (shop.stripe_account, shop.stripe_account_pending) == ("acct_shop1", None)
    # back from Stripe: the status read on the platform, the wallets domain on the account
    assert retrieved.method == "GET" and retrieved.path == "/v1/accounts/acct_shop1"
    assert "Stripe-Account" not in retrieved.headers
    assert registered.path == "/v1/payment_method_domains"
    assert parse_qs(registered.body.decode()) == {
        "domain_name": ["pay.example.com"], "enabled": ["true"]
    }  # fmt: skip
    assert registered.headers["Stripe-Account"] == "acct_shop1"
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Welcome back" in text and "not yet enabled" in text
    assert "external_account" in text and "tos_acceptance.date" in text
    # a second visit continues with the same account: only a new link
    assert again.status_code == 303 and again.headers["Location"] == LINK
    assert [r.path for r in recorder.requests[4:]] == ["/v1/account_links"]
    actions = db.session.scalars(
        select(AuditLog.action).where(AuditLog.merchant_id == m.id).order_by(AuditLog.id)
    ).all()
    assert [a for a in actions if a.startswith("merchant.connect.")] == [
        "merchant.connect.account_created",
        "merchant.connect.onboarding_started",
        "merchant.connect.account_live",
        "merchant.connect.onboarding_returned",
        "merchant.connect.onboarding_started",
    ]
    returned = db.session.scalars(
        select(AuditLog).where(AuditLog.action == "merchant.connect.onboarding_returned")
    ).one()
    assert returned.details["account"] == "acct_shop1"
    assert returned.details["wallet_domain"] == "pmd_15"
    assert json.dumps(returned.details["requirements_due"]) == (
        '["external_account", "tos_acceptance.date"]'
    )


def test_stripe_down_is_a_502_and_the_created_account_is_kept(app):
    def answer(req):
        if req.path == "/v1/account_links":
            return json_response(400, {"error": {"type": "invalid_request_error", "message": "x"}})
        return _stripe(req)

    recorder = HTTPRecorder(answer).start()
    try:
        m, browser = _owner(app, recorder)
        token = csrf(browser, "/merchant/settings")
        resp = browser.post("/merchant/connect", data={"csrf_token": token})
        status = browser.get("/merchant/settings")
    finally:
        recorder.stop()
    assert resp.status_code == 502 and "does not answer just now" in resp.text
    assert 'value="Connect Shop"' in resp.text  # the shop's form keeps its values
    db.session.expire_all()
    shop = db.session.get(Merchant, m.id)
    # Kept for the next try, but not charged on: the shop's payments still go where they went.
    assert (shop.stripe_account, shop.stripe_account_pending) == (None, "acct_shop1")
    assert "Continue onboarding" in status.text and "Payouts" in status.text


def test_payments_stay_on_the_platform_until_charges_are_enabled(app):
    def answer(req):
        if req.method == "GET" and req.path.startswith("/v1/accounts/acct_shop1"):
            return json_response(200, {**ACCOUNT, "charges_enabled": False})
        return _stripe(req)

    recorder = HTTPRecorder(answer).start()
    try:
        m, browser = _owner(app, recorder)
        token = csrf(browser, "/merchant/settings")
        assert browser.post("/merchant/connect", data={"csrf_token": token}).status_code == 303
        assert browser.get("/merchant/connect/return").status_code == 200
    finally:
        recorder.stop()
    db.session.expire_all()
    shop = db.session.get(Merchant, m.id)
    assert (shop.stripe_account, shop.stripe_account_pending) == (None, "acct_shop1")
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.merchant_id == m.id)).all()
    assert "merchant.connect.account_live" not in actions
