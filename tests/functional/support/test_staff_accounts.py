"""Staff accounts over their life: disable, enable, reset TOTP, list; every sign-in in
the audit log; a TOTP code accepted once only, even by two sign-ins racing."""

from __future__ import annotations

import json
import threading

import pyotp
import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.support.models import AuditLog, StaffSession, StaffUser
from tests.functional.support.test_console import CSRF, PASSWORD, https_client, login, staff


@pytest.fixture
def https(app):
    return https_client(app)


def cli(app, *args: str):
    out = app.test_cli_runner().invoke(args=["staff", *args])
    db.session.expire_all()
    return out


def sign_ins(email: str) -> list[tuple[str, str]]:
    rows = db.session.scalars(
        select(AuditLog)
        .where(AuditLog.staff_email == email, AuditLog.action.like("sign_in%"))
        .order_by(AuditLog.id)
    )
    return [(row.action, row.reason) for row in rows]


def test_a_disabled_account_stops_at_its_next_request_and_cannot_sign_in(app, https):
    user = staff()
    assert login(https, user).status_code == 303
    assert https.get("/support/").status_code == 200
    out = cli(app, "disable", user.email)
    assert out.exit_code == 0, out.output
    assert db.session.scalar(select(StaffSession.id)) is None
    resp = https.get("/support/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/support/login")
    assert login(https, user).status_code == 401  # the right password, refused
    assert sign_ins(user.email)[-1] == ("sign_in_failed", "disabled")
    out = cli(app, "enable", user.email)
    assert out.exit_code == 0, out.output
    assert login(https, user).status_code == 303
    actions = [a for (a,) in db.session.execute(select(AuditLog.action).order_by(AuditLog.id))]
    assert "staff_disabled" in actions and "staff_enabled" in actions


def test_a_session_of_an_account_disabled_elsewhere_ends_at_the_next_request(app, https):
    """Even when the sessions were not deleted (disabled by another process's update)."""
    user = staff()
    assert login(https, user).status_code == 303
    db.session.execute(
        update(StaffUser).where(StaffUser.id == user.id).values(disabled_at=db.func.now())
    )
    db.session.commit()
    resp = https.get("/support/search?q=x")
    assert resp.status_code == 302
    assert db.session.scalar(select(StaffSession.id)) is None


def test_list_and_unknown_accounts(app):
    staff(email="b@portal.test")
    admin = staff("admin", email="a@portal.test")
    cli(app, "disable", "b@portal.test")
    out = cli(app, "list")
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert [r["email"] for r in rows] == ["a@portal.test", "b@portal.test"]
    assert rows[0]["totp"] is True and rows[0]["disabled"] is None and rows[0]["id"] == admin.id
    assert rows[1]["disabled"] is not None
    for command in ("disable", "enable", "reset-totp"):
        out = cli(app, command, "nobody@portal.test")
        assert out.exit_code != 0 and "no staff account" in out.output


def test_reset_totp_ends_sessions_and_old_codes(app, https):
    admin = staff("admin")
    old_secret = admin.totp_secret
    assert login(https, admin).status_code == 303
    out = cli(app, "reset-totp", admin.email)
    assert out.exit_code == 0 and out.output.startswith("otpauth://totp/")
    user = db.session.get(StaffUser, admin.id)
    assert user.totp_secret != old_secret
    assert https.get("/support/").status_code == 302
    assert login(https, user, code=pyotp.TOTP(old_secret).now()).status_code == 401
    assert login(https, user).status_code == 303


def test_every_sign_in_is_in_the_audit_log(app, https):
    user = staff()
    assert login(https, user, password="wrong password!").status_code == 401
    assert login(https, user).status_code == 303
    https.post(
        "/support/login",
        data={
            "csrf_token": CSRF.search(https.get("/support/login").text).group(1),
            "email": "Nobody@Portal.test",
            "password": PASSWORD,
        },
    )
    assert sign_ins(user.email) == [("sign_in_failed", "wrong password"), ("sign_in", "")]
    assert sign_ins("nobody@portal.test") == [("sign_in_failed", "unknown account")]
    success = db.session.scalars(select(AuditLog).where(AuditLog.action == "sign_in")).one()
    assert success.staff_id == user.id and success.target_id == user.id
    assert success.details["client"]


def test_a_totp_code_is_accepted_once(app, https):
    admin = staff("admin")
    code = pyotp.TOTP(admin.totp_secret).now()
    assert login(https, admin, code=code).status_code == 303
    https.post(
        "/support/logout", data={"csrf_token": CSRF.search(https.get("/support/").text).group(1)}
    )
    assert login(https, admin, code=code).status_code == 401
    assert sign_ins(admin.email)[-1] == ("sign_in_failed", "wrong or reused code")
    assert login(https, admin, code="abcdef").status_code == 401  # not even digits


def test_two_sign_ins_racing_with_one_code_let_one_in(app):
    admin = staff("admin")
    code = pyotp.TOTP(admin.totp_secret).now()
    clients = [https_client(app) for _ in range(4)]
    email = admin.email
    db.session.commit()
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    errors: list[BaseException] = []

    def sign_in(i: int) -> None:
        # Each thread its own app context: its form token is its own session's.
        form = CSRF.search(clients[i].get("/support/login").text).group(1)
        barrier.wait()
        try:
            resp = clients[i].post(
                "/support/login",
                data={"csrf_token": form, "email": email, "password": PASSWORD,
                      "code": code},
            )  # fmt: skip
            statuses.append(resp.status_code)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(statuses) == [303, 401, 401, 401]
    db.session.expire_all()
    assert db.session.scalar(select(db.func.count(StaffSession.id))) == 1
