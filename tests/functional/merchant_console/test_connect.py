"""The shop's Stripe account in the console, with the sandbox (connected and enabled at
once): owner only, audited, the shop's own account only (issue 15, item 5)."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.merchants.models import Merchant
from portal.support.models import AuditLog
from tests.factories import make_merchant
from tests.functional.merchant_console.helpers import console_user, csrf, sign_in
from tests.functional.support.test_console import https_client


def test_the_owner_sees_the_status_and_goes_through_the_sandboxs_onboarding(app):
    m = make_merchant(name="Sandbox Shop")
    owner = console_user(m.merchant, "owner@shop.test")
    browser = https_client(app)
    sign_in(browser, owner)
    page = browser.get("/merchant/settings")
    assert "Stripe account" in page.text and "Charges:" in page.text
    assert "Information Stripe still needs:" in page.text and "not yet enabled" not in page.text
    token = csrf(browser, "/merchant/settings")
    resp = browser.post("/merchant/connect", data={"csrf_token": token})
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/merchant/connect/return")
    back = browser.get(resp.headers["Location"])
    assert back.status_code == 200 and "Welcome back" in back.text
    expired = browser.get("/merchant/connect/refresh")
    assert expired.status_code == 200 and "no longer valid" in expired.text
    db.session.expire_all()
    assert db.session.get(Merchant, m.id).stripe_account is None  # the sandbox stores nothing
    actions = db.session.scalars(
        select(AuditLog.action)
        .where(AuditLog.merchant_id == m.id, AuditLog.action.like("merchant.connect.%"))
        .order_by(AuditLog.id)
    ).all()
    assert actions == [
        "merchant.connect.onboarding_started",
        "merchant.connect.onboarding_returned",
    ]


def test_staff_users_and_forged_posts_are_refused(app):
    m = make_merchant(name="Sandbox Shop")
    clerk = console_user(m.merchant, "clerk@shop.test", "staff")
    browser = https_client(app)
    sign_in(browser, clerk)
    token = csrf(browser, "/merchant/")
    assert browser.post("/merchant/connect", data={"csrf_token": token}).status_code == 403
    assert browser.get("/merchant/connect/return").status_code == 403
    assert browser.get("/merchant/connect/refresh").status_code == 403
    owner = console_user(m.merchant, "owner@shop.test")
    browser = https_client(app)
    sign_in(browser, owner)
    assert browser.post("/merchant/connect", data={}).status_code == 400  # no CSRF token
    assert https_client(app).get("/merchant/connect/return").status_code == 302  # signed out
    assert not db.session.scalars(
        select(AuditLog).where(AuditLog.action.like("merchant.connect.%"))
    ).all()
