"""Merchant users: invitations, sign-in, sessions, password resets, the audit trail.

Rules (docs/merchant-console.md):

- an owner may do everything and always signs in with a TOTP code; staff create, send,
  view and refund up to the limit the owner set;
- invitations and password resets are signed links sent by e-mail; each works once
  (it is bound to the account's current password hash) and expires (7 days, 1 hour);
- a session is a database row: idle 30 minutes or 12 hours old, it is gone, and every
  sign-in starts a new one;
- five failed sign-ins lock the account for 15 minutes;
- every action is written to the audit log in the same transaction.

Services add and flush; the request or the command commits.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select

from portal.credentials import (
    MIN_PASSWORD,
    hash_password,
    needs_rehash,
    verify_password,
    verify_totp,
)
from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.queue import enqueue, job_handler
from portal.merchant_console.models import ROLES, MerchantSession, MerchantUser
from portal.merchants.models import Merchant
from portal.notifications.mail import render_mail, send_mail
from portal.support.models import AuditLog

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
INVITATION_AGE = timedelta(days=7)
RESET_AGE = timedelta(hours=1)
SALTS = {"invite": "portal.merchant-invitation.v1", "reset": "portal.merchant-reset.v1"}
TOTP_SETUP_SALT = "portal.merchant-totp-setup.v1"
MAX_REFUND_LIMIT = 10**12


class LoginFailed(Exception):
    """One answer for every failure: never says whether the account exists."""


class AccountError(ValueError):
    """An invitation, a password or a setting refused; ``code`` names why."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --- the audit trail --------------------------------------------------------------


def audit(
    user: MerchantUser, action: str, target: str = "", reason: str = "", **details: Any
) -> None:
    """One entry of the shared audit log, in the caller's transaction."""
    db.session.add(
        AuditLog(
            staff_id=user.id,
            staff_email=user.email,
            action=f"merchant.{action}"[:40],
            merchant_id=user.merchant_id,
            target_id=(target or user.id)[:60],
            reason=reason[:500],
            details={"console": "merchant", **details},
        )
    )
    db.session.flush()


def audit_entries(user: MerchantUser, limit: int = 200) -> list[AuditLog]:
    """What was done on the user's merchant, by its users and by support, newest first."""
    query = select(AuditLog).where(AuditLog.merchant_id == user.merchant_id)
    return list(
        db.session.scalars(query.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit))
    )


# --- accounts -----------------------------------------------------------------------


def _normal_email(email: str) -> str:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254 or " " in email:
        raise AccountError("invalid_email")
    return email


def invite_user(
    merchant: Merchant,
    email: str,
    role: str,
    *,
    refund_limit: int = 0,
    invited_by: MerchantUser | None = None,
    locale: str = "en",
) -> MerchantUser:
    """A new account waiting for its invitation to be accepted; the e-mail goes out as a
    job after the commit."""
    email = _normal_email(email)
    if role not in ROLES:
        raise AccountError("invalid_role")
    if not 0 <= refund_limit <= MAX_REFUND_LIMIT:
        raise AccountError("invalid_refund_limit")
    if invited_by is not None and (
        not invited_by.is_owner or invited_by.merchant_id != merchant.id
    ):
        raise AccountError("forbidden")
    if db.session.scalar(select(MerchantUser.id).where(MerchantUser.email == email)):
        raise AccountError("email_taken")
    user = MerchantUser(
        merchant_id=merchant.id,
        email=email,
        role=role,
        refund_limit=refund_limit,
        failed_logins=0,
        invited_by=invited_by.id if invited_by else None,
    )
    db.session.add(user)
    db.session.flush()
    if invited_by is not None:
        audit(invited_by, "user.invited", user.id, email=email, role=role,
              refund_limit=refund_limit)  # fmt: skip
    send_account_mail(user, "invite", locale)
    return user


def send_account_mail(user: MerchantUser, purpose: str, locale: str) -> None:
    enqueue("merchant_account_mail", {"user_id": user.id, "purpose": purpose, "locale": locale},
            max_attempts=10)  # fmt: skip


def users_of(user: MerchantUser) -> list[MerchantUser]:
    return list(
        db.session.scalars(
            select(MerchantUser)
            .where(MerchantUser.merchant_id == user.merchant_id)
            .order_by(MerchantUser.created_at, MerchantUser.id)
        )
    )


def colleague(user: MerchantUser, user_id: str) -> MerchantUser | None:
    """Another account of the same merchant, or None (another merchant's is None too)."""
    other = db.session.get(MerchantUser, user_id)
    return other if other is not None and other.merchant_id == user.merchant_id else None


def update_user(
    owner: MerchantUser, other: MerchantUser, *, refund_limit: int | None, disabled: bool | None
) -> None:
    """The owner changes a staff member's refund limit, or disables / enables an account
    (never their own: a merchant always keeps an owner who can sign in)."""
    if not owner.is_owner or other.merchant_id != owner.merchant_id:
        raise AccountError("forbidden")
    if refund_limit is not None and refund_limit != other.refund_limit:
        if not 0 <= refund_limit <= MAX_REFUND_LIMIT:
            raise AccountError("invalid_refund_limit")
        audit(owner, "user.refund_limit", other.id, before=other.refund_limit, after=refund_limit)
        other.refund_limit = refund_limit
    if disabled is not None and disabled != (other.disabled_at is not None):
        if other.id == owner.id:
            raise AccountError("cannot_disable_self")
        other.disabled_at = utcnow() if disabled else None
        if disabled:
            end_all_sessions(other)
        audit(owner, "user.disabled" if disabled else "user.enabled", other.id)
    db.session.flush()


# --- signed links -------------------------------------------------------------------


def _serializer(salt: str) -> URLSafeTimedSerializer:
    keys = current_app.config["PORTAL_SECRET_KEYS"]
    # itsdangerous signs with the last key; settings list the newest first.
    return URLSafeTimedSerializer(list(reversed(keys)), salt=salt)


def _fingerprint(user: MerchantUser) -> str:
    """Changes when the password does (or the account is disabled): a link works once."""
    state = f"{user.password_hash or ''}|{user.disabled_at or ''}"
    return hashlib.sha256(state.encode()).hexdigest()[:20]


def account_token(user: MerchantUser, purpose: str) -> str:
    return str(_serializer(SALTS[purpose]).dumps([user.id, _fingerprint(user)]))


def account_url(user: MerchantUser, purpose: str) -> str:
    path = "invitations" if purpose == "invite" else "reset"
    return f"{current_app.config['PORTAL_BASE_URL']}/merchant/{path}/{account_token(user, purpose)}"


def user_from_token(token: str, purpose: str) -> MerchantUser | None:
    """The account a link is for, or None when it is forged, expired, used or moot."""
    age = INVITATION_AGE if purpose == "invite" else RESET_AGE
    if not token or len(token) > 300:
        return None
    try:
        user_id, fingerprint = _serializer(SALTS[purpose]).loads(
            token, max_age=int(age.total_seconds())
        )
    except (BadSignature, ValueError, TypeError):
        return None
    user = db.session.get(MerchantUser, str(user_id))
    if user is None or user.disabled_at is not None or fingerprint != _fingerprint(user):
        return None
    if (purpose == "invite") != (user.password_hash is None):
        return None  # an invitation is for a new account, a reset for an active one
    return user


def totp_setup_token(user: MerchantUser, secret: str) -> str:
    """The TOTP secret offered on the set-up page, signed for this account only."""
    return str(_serializer(TOTP_SETUP_SALT).dumps([user.id, secret]))


def totp_secret_from(user: MerchantUser, token: str) -> str | None:
    try:
        user_id, secret = _serializer(TOTP_SETUP_SALT).loads(token or "", max_age=3600)
    except (BadSignature, ValueError, TypeError):
        return None
    return str(secret) if user_id == user.id else None


def _check_password(password: str, confirm: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError("password_too_short")
    if len(password) > 200:
        raise AccountError("password_too_long")
    if password != confirm:
        raise AccountError("password_mismatch")


def accept_invitation(
    user: MerchantUser, password: str, confirm: str, totp_token: str, code: str
) -> None:
    """Sets the password and, for an owner (or staff who chose it), the TOTP secret
    whose code was typed."""
    _check_password(password, confirm)
    secret = totp_secret_from(user, totp_token) if totp_token else None
    if user.is_owner and secret is None:
        raise AccountError("totp_required")
    if secret is not None:
        step = verify_totp(secret, code, None)
        if step is None:
            raise AccountError("totp_invalid")
        user.totp_secret, user.totp_last_step = secret, step
    user.password_hash = hash_password(password)
    user.activated_at = utcnow()
    audit(user, "user.activated", totp=user.totp_secret is not None)


def request_reset(email: str, locale: str) -> None:
    """Sends a reset link to an active account; the same answer for any address."""
    user = db.session.scalars(
        select(MerchantUser).where(MerchantUser.email == (email or "").strip().lower()[:254])
    ).first()
    if user is None or not user.active:
        return
    send_account_mail(user, "reset", locale)
    audit(user, "user.reset_requested")


def reset_password(user: MerchantUser, password: str, confirm: str, code: str) -> None:
    """A new password (with a TOTP code when the account has one); ends every session."""
    _check_password(password, confirm)
    if user.totp_secret:
        step = verify_totp(user.totp_secret, code, user.totp_last_step)
        if step is None:
            raise AccountError("totp_invalid")
        user.totp_last_step = step
    user.password_hash = hash_password(password)
    user.failed_logins, user.locked_until = 0, None
    end_all_sessions(user)
    audit(user, "user.password_reset")


@job_handler("merchant_account_mail")
def send_account_mail_job(payload: dict[str, Any]) -> None:
    """The invitation or reset e-mail; the link is made now (the account still as it was)."""
    user = db.session.get(MerchantUser, payload["user_id"])
    purpose = payload["purpose"]
    if user is None or user.disabled_at is not None or purpose not in SALTS:
        return
    if (purpose == "invite") != (user.password_hash is None):
        return  # accepted (or reset) meanwhile: the link would not work
    subject, text, html = render_mail(
        f"merchant_{purpose}", payload.get("locale") or "en", user=user, pr=None,
        merchant=user.merchant, url=account_url(user, purpose),
        hours=int(RESET_AGE.total_seconds() // 3600), days=INVITATION_AGE.days,
    )  # fmt: skip
    send_mail(user.email, subject, text, html, from_name=user.merchant.display_name)


# --- sign-in and sessions -----------------------------------------------------------


def authenticate(email: str, password: str, code: str | None) -> MerchantUser:
    """The user, or :class:`LoginFailed` (failure counters and the audit entry are kept
    by the request's commit)."""
    user = db.session.scalars(
        select(MerchantUser).where(MerchantUser.email == (email or "").strip().lower()[:254])
    ).first()
    password_ok = verify_password(user.password_hash if user else None, password)
    if user is None or not user.active:
        raise LoginFailed
    now = utcnow()
    if user.locked_until and user.locked_until > now:
        audit(user, "signin.refused", reason="locked")
        raise LoginFailed
    step = None
    if user.totp_secret or user.is_owner:
        step = verify_totp(user.totp_secret, code, user.totp_last_step)
    if not password_ok or ((user.totp_secret or user.is_owner) and step is None):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until, user.failed_logins = now + LOCKOUT, 0
        audit(user, "signin.failed")
        raise LoginFailed
    if step is not None:
        user.totp_last_step = step
    user.failed_logins, user.locked_until = 0, None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit(user, "signin")
    return user


def start_session(user: MerchantUser) -> str:
    """A brand-new session id at every sign-in."""
    session = MerchantSession(id=secrets.token_urlsafe(32), user_id=user.id)
    db.session.add(session)
    db.session.flush()
    return session.id


def load_session(session_id: str | None) -> MerchantSession | None:
    """The live session, touched; an expired one, or a disabled user's, is deleted."""
    if not session_id or len(session_id) > 64:
        return None
    session = db.session.get(MerchantSession, session_id)
    if session is None:
        return None
    now = utcnow()
    stale = now - session.last_seen_at > IDLE_TIMEOUT or now - session.created_at > ABSOLUTE_TIMEOUT
    if stale or not session.user.active:
        db.session.delete(session)
        db.session.flush()
        return None
    if now - session.last_seen_at > timedelta(seconds=30):
        session.last_seen_at = now
        db.session.flush()
    return session


def end_session(session_id: str | None) -> None:
    if session_id:
        db.session.execute(delete(MerchantSession).where(MerchantSession.id == session_id))
        db.session.flush()


def end_all_sessions(user: MerchantUser) -> None:
    db.session.execute(delete(MerchantSession).where(MerchantSession.user_id == user.id))
    db.session.flush()


def sign_out(user: MerchantUser, session_id: str) -> None:
    end_session(session_id)
    audit(user, "signout")
