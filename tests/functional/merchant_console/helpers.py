"""Merchant console accounts for tests: made through the services, signed in over https."""

from __future__ import annotations

import re

import pyotp
from flask import g, has_app_context
from flask.testing import FlaskClient

from portal import credentials
from portal.extensions import db
from portal.merchant_console import accounts
from portal.merchant_console.models import MerchantUser
from portal.merchants.models import Merchant
from tests.functional.support.test_console import CSRF

PASSWORD = "owner password 1234"
COOKIE = "__Host-portal_merchant"


def console_user(
    merchant: Merchant, email: str, role: str = "owner", *, totp: bool | None = None,
    refund_limit: int = 0,
) -> MerchantUser:  # fmt: skip
    """An active account, as if its invitation had been accepted (owners with TOTP)."""
    user = accounts.invite_user(merchant, email, role, refund_limit=refund_limit)
    secret = (
        credentials.new_totp_secret() if (totp if totp is not None else role == "owner") else None
    )
    accounts.accept_invitation(
        user, PASSWORD, PASSWORD,
        accounts.totp_setup_token(user, secret) if secret else "",
        pyotp.TOTP(secret).now() if secret else "",
    )  # fmt: skip
    db.session.commit()
    return user


def fresh_code(user: MerchantUser) -> str:
    """A code the portal will take now and for at least the next 30 seconds, however slow
    the machine: the step after now (the portal accepts one step of drift either way),
    or later when that one is used. When the steps around now are all used, the account
    is set back as if the last code had been now's."""
    user = db.session.get(MerchantUser, user.id)  # in this session, as stored now
    db.session.refresh(user)
    now = credentials.current_step()
    step = max(now + 1, (user.totp_last_step if user.totp_last_step is not None else -9) + 1)
    if step > now + 1:
        user.totp_last_step, step = now, now + 1
        db.session.commit()
    return pyotp.TOTP(user.totp_secret).generate_otp(step)


def forget_csrf() -> None:
    """Flask-WTF keeps the token of the app context in ``g``; several browsers in one
    test share that context, so each asks afresh for the token of its own session."""
    if has_app_context():
        g.pop("csrf_token", None)


def csrf(client: FlaskClient, path: str = "/merchant/reset") -> str:
    forget_csrf()
    return CSRF.search(client.get(path).text).group(1)


def sign_in(client: FlaskClient, user: MerchantUser, password: str = PASSWORD, code=None):
    if code is None:
        code = fresh_code(user) if user.totp_secret else ""
    return client.post(
        "/merchant/login",
        data={"csrf_token": csrf(client), "email": user.email, "password": password, "code": code},
    )


def session_id(response) -> str:
    return re.search(f"{COOKIE}=([^;]+)", response.headers["Set-Cookie"]).group(1)
