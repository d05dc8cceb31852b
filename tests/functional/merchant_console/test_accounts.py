"""Merchant console accounts: invitations, sign-in with TOTP once per code, sessions,
resets by e-mail, roles, rate limits and the audit trail (issue 15, item 1)."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.merchant_console.models import MerchantSession, MerchantUser
from portal.support.models import AuditLog
from tests.factories import make_merchant
from tests.functional.merchant_console.helpers import (
    COOKIE,
    PASSWORD,
    console_user,
    csrf,
    forget_csrf,
    fresh_code,
    session_id,
    sign_in,
)
from tests.functional.support.test_console import CSRF, https_client, login, staff

LINK = re.compile(r"https://portal\.test/merchant/(invitations|reset)/[A-Za-z0-9_.\-]+")


@pytest.fixture
def https(app):
    return https_client(app)


def _link(message) -> str:
    return LINK.search(message.get_body(("plain",)).get_content()).group(0)


def _actions(user_id: str) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditLog.action).where(AuditLog.staff_id == user_id).order_by(AuditLog.id)
        )
    )


def test_the_cli_invites_the_first_owner_who_sets_a_password_and_totp(app, https, smtp):
    m = make_merchant(name="Bakery Dupont")
    result = app.test_cli_runner().invoke(
        args=["merchant", "user", "invite", m.id, "--email", "Owner@Bakery.test", "--locale", "fr"]
    )
    assert result.exit_code == 0, result.output
    run_due_jobs()
    [mail] = smtp.messages
    assert mail["To"] == "owner@bakery.test"
    assert "Bakery Dupont" in mail["Subject"] and "console" in mail["Subject"]
    url = _link(mail)
    # the same account and state (the signature's timestamp may tick between the two)
    payload = url.rsplit("/", 1)[1].split(".")[0]
    assert f"/merchant/invitations/{payload}." in result.output
    path = url.removeprefix("https://portal.test")
    page = https.get(path)
    assert page.status_code == 200 and "owner@bakery.test" in page.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    setup = re.search(r'name="totp_token" value="([^"]+)"', page.text).group(1)
    form = {"csrf_token": csrf(https), "password": PASSWORD, "confirm": PASSWORD,
            "totp_token": setup, "use_totp": "1"}  # fmt: skip
    # refused: no code, a wrong code, a short password, two different passwords, no TOTP
    for bad in (
        {"code": ""},
        {"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"},
        {"password": "short", "confirm": "short", "code": pyotp.TOTP(secret).now()},
        {"confirm": PASSWORD + "x", "code": pyotp.TOTP(secret).now()},
        {"use_totp": "", "code": ""},
    ):
        assert https.post(path, data={**form, **bad}).status_code == 422, bad
    user = db.session.scalars(select(MerchantUser)).one()
    assert user.password_hash is None and user.totp_secret is None
    done = https.post(path, data={**form, "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 303
    cookie = done.headers["Set-Cookie"]
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert cookie.startswith(f"{COOKIE}=")
    home = https.get("/merchant/")
    assert home.status_code == 200 and "Bakery Dupont" in home.text
    db.session.refresh(user)
    assert user.totp_secret == secret and user.password_hash.startswith("$argon2")
    # the link worked once
    assert https.get(path).status_code == 404
    code = pyotp.TOTP(secret).now()
    assert https.post(path, data={**form, "code": code}).status_code == 404
    assert _actions(user.id) == ["merchant.user.activated"]


def test_a_totp_code_works_once(app, https):
    m = make_merchant()
    owner = console_user(m.merchant, "owner@shop.test")
    code = fresh_code(owner)
    assert sign_in(https, owner, code=code).status_code == 303
    https.post("/merchant/logout", data={"csrf_token": csrf(https, "/merchant/")})
    # the same code again, from another browser: refused; the next one is taken
    other = https_client(app)
    assert sign_in(other, owner, code=code).status_code == 401
    assert sign_in(other, owner).status_code == 303
    # an owner always needs a code; a wrong password with a right code is refused too
    assert sign_in(https_client(app), owner, code="").status_code == 401
    assert sign_in(https_client(app), owner, password="wrong password!").status_code == 401
    assert _actions(owner.id)[1:] == [
        "merchant.signin", "merchant.signout", "merchant.signin.failed", "merchant.signin",
        "merchant.signin.failed", "merchant.signin.failed",
    ]  # fmt: skip


def test_failures_look_the_same_and_lock_the_account(app, https):
    m = make_merchant()
    user = console_user(m.merchant, "staff@shop.test", "staff")
    unknown = https.post("/merchant/login", data={
        "csrf_token": csrf(https), "email": "nobody@x.test", "password": PASSWORD})  # fmt: skip
    wrong = sign_in(https, user, password="wrong password!")
    assert unknown.status_code == wrong.status_code == 401

    def plain(text: str, email: str) -> str:  # the CSRF token's timestamp may tick between
        return CSRF.sub("", text.replace(email, ""))

    assert plain(unknown.text, "nobody@x.test") == plain(wrong.text, user.email)
    for _ in range(4):
        sign_in(https, user, password="wrong password!")
    db.session.refresh(user)
    assert user.locked_until is not None
    assert sign_in(https, user).status_code == 401  # locked even with the right password
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert sign_in(https, user).status_code == 303


def test_sessions_rotate_expire_and_end(app, https):
    m = make_merchant()
    user = console_user(m.merchant, "staff@shop.test", "staff")
    first = session_id(sign_in(https, user))
    second = session_id(sign_in(https, user))
    assert first != second
    assert db.session.get(MerchantSession, first) is None
    # idle for 31 minutes: gone
    db.session.get(MerchantSession, second).last_seen_at = utcnow() - timedelta(minutes=31)
    db.session.commit()
    assert https.get("/merchant/").status_code == 302
    assert db.session.get(MerchantSession, second) is None
    third = session_id(sign_in(https, user))
    https.post("/merchant/logout", data={"csrf_token": csrf(https, "/merchant/")})
    assert db.session.get(MerchantSession, third) is None
    https.set_cookie(COOKIE, third, domain="portal.test", secure=True)
    assert https.get("/merchant/").status_code == 302
    # a plain-http development server gets a cookie without the __Host- prefix
    app.config["PORTAL_BASE_URL"] = "http://127.0.0.1:5000"
    plain = FlaskClient(app, app.response_class, use_cookies=True)
    token = csrf(plain)
    resp = plain.post("/merchant/login", data={"csrf_token": token, "email": user.email,
                                               "password": PASSWORD})  # fmt: skip
    assert resp.status_code == 303 and resp.headers["Set-Cookie"].startswith("portal_merchant_dev=")


def test_a_password_reset_by_email_link(app, https, smtp):
    m = make_merchant(name="Corner Shop")
    owner = console_user(m.merchant, "owner@shop.test")
    signed_in = https_client(app)
    old_session = session_id(sign_in(signed_in, owner))
    for email in ("nobody@shop.test", "OWNER@shop.test"):
        page = https.post("/merchant/reset", data={"csrf_token": csrf(https), "email": email})
        assert page.status_code == 200 and "on its way" in page.text
    run_due_jobs()
    [mail] = smtp.messages  # one message: the unknown address got none, and the same page
    assert mail["To"] == "owner@shop.test" and "Corner Shop" in mail["Subject"]
    path = _link(mail).removeprefix("https://portal.test")
    assert https.get(path).status_code == 200
    form = {"csrf_token": csrf(https), "password": "a brand new password", "confirm":
            "a brand new password"}  # fmt: skip
    assert https.post(path, data={**form, "code": ""}).status_code == 422  # TOTP too
    assert https.post(path, data={**form, "code": fresh_code(owner)}).status_code == 303
    assert db.session.get(MerchantSession, old_session) is None  # every session ended
    assert https.get(path).status_code == 404  # used
    assert sign_in(https, owner).status_code == 401
    assert sign_in(https, owner, password="a brand new password").status_code == 303
    assert "merchant.user.password_reset" in _actions(owner.id)
    # a forged or foreign-salted token is the same plain 404
    for forged in (path + "x", path.replace("/reset/", "/invitations/"), "/merchant/reset/x.y.z"):
        assert https.get(forged).status_code == 404, forged


def test_owners_invite_staff_and_set_their_refund_limit(app, https, smtp):
    m = make_merchant()
    owner = console_user(m.merchant, "owner@shop.test")
    sign_in(https, owner)
    token = csrf(https, "/merchant/users")
    resp = https.post("/merchant/users", data={
        "csrf_token": token, "email": "clerk@shop.test", "role": "staff",
        "refund_limit": "25.00"})  # fmt: skip
    assert resp.status_code == 303
    for bad in ({"email": "not an email"}, {"email": "owner@shop.test"}, {"role": "admin"},
                {"refund_limit": "lots"}, {"refund_limit": "-3"}):  # fmt: skip
        data = {"csrf_token": token, "email": "x@shop.test", "role": "staff", **bad}
        assert https.post("/merchant/users", data=data).status_code == 422, bad
    run_due_jobs()
    [mail] = smtp.messages
    clerk = db.session.scalars(select(MerchantUser).where(
        MerchantUser.email == "clerk@shop.test")).one()  # fmt: skip
    assert clerk.refund_limit == 2500 and clerk.role == "staff" and clerk.invited_by == owner.id
    path = _link(mail).removeprefix("https://portal.test")
    staff_browser = https_client(app)
    page = staff_browser.get(path)
    setup = re.search(r'name="totp_token" value="([^"]+)"', page.text).group(1)
    done = staff_browser.post(path, data={"csrf_token": csrf(staff_browser), "password": PASSWORD,
                                          "confirm": PASSWORD, "totp_token": setup})  # fmt: skip
    assert done.status_code == 303  # staff may go without TOTP
    assert staff_browser.get("/merchant/").status_code == 200
    for page in ("/merchant/users", "/merchant/audit"):
        assert staff_browser.get(page).status_code == 403
    own = csrf(staff_browser, "/merchant/")
    data = {"csrf_token": own, "refund_limit": "9999"}
    assert staff_browser.post(f"/merchant/users/{clerk.id}", data=data).status_code == 403
    # the owner raises the limit, then disables the account: its session ends at once
    token = csrf(https, "/merchant/users")
    data = {"csrf_token": token, "refund_limit": "40,00", "state": ""}
    assert https.post(f"/merchant/users/{clerk.id}", data=data).status_code == 303
    db.session.refresh(clerk)
    assert clerk.refund_limit == 4000
    data = {"csrf_token": token, "state": "disable"}
    assert https.post(f"/merchant/users/{clerk.id}", data=data).status_code == 303
    assert staff_browser.get("/merchant/").status_code == 302
    assert sign_in(https_client(app), clerk).status_code == 401
    data = {"csrf_token": token, "state": "disable"}
    assert https.post(f"/merchant/users/{owner.id}", data=data).status_code == 422  # not oneself
    audit = https.get("/merchant/audit").text
    for action in ("merchant.user.invited", "merchant.user.refund_limit", "merchant.user.disabled"):
        assert action in audit


def test_the_support_console_sees_merchant_actions_in_its_audit(app, https):
    m, other = make_merchant(name="Shop A"), make_merchant(name="Shop B")
    owner = console_user(m.merchant, "owner@a.test")
    sign_in(https, owner)
    support = https_client(app)
    forget_csrf()
    assert login(support, staff("admin", email="root@portal.test")).status_code == 303
    assert "owner@a.test" in support.get("/support/audit").text
    scoped = https_client(app)
    forget_csrf()
    assert login(scoped, staff("admin", [other.id], email="b@portal.test")).status_code == 303
    assert "owner@a.test" not in scoped.get("/support/audit").text


def test_sign_in_is_rate_limited(database_url):
    from tests.conftest import _empty, make_app

    app = make_app(database_url, RATELIMIT_ENABLED=True, login_account_rate_limit="3 per hour")
    with app.app_context():
        db.create_all()
        db.session.remove()
    statuses = []
    for n in range(4):
        client = https_client(app, REMOTE_ADDR=f"10.9.{database_url.startswith('sqlite')}.{n}")
        data = {"csrf_token": csrf(client), "email": "target@shop.test", "password": "x"}
        statuses.append(client.post("/merchant/login", data=data).status_code)
    assert statuses == [401, 401, 401, 429]
    client = https_client(app, REMOTE_ADDR="10.9.9.9")
    token = csrf(client)
    statuses = [
        client.post(
            "/merchant/login", data={"csrf_token": token, "email": f"u{n}@x.test", "password": "x"}
        ).status_code
        for n in range(11)
    ]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    _empty(app)
