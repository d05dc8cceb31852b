"""Staff accounts, sign-in (password and TOTP) and the console's server-side sessions."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from portal.db_types import utcnow
from portal.extensions import db
from portal.merchants.models import Merchant
from portal.support.models import StaffSession, StaffUser

HASHER = PasswordHasher()
# Verified against when the email is unknown, so both paths cost the same.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
ROLES = ("support", "admin")


class LoginFailed(Exception):
    """One message for every failure: never says whether the account exists."""


class StaffError(ValueError):
    """Invalid staff settings (CLI input)."""


def create_staff(
    email: str, role: str, merchant_ids: list[str] | None = None, password: str | None = None
) -> tuple[StaffUser, str]:
    """A new staff account (caller commits). Admins always get a TOTP secret."""
    email = email.strip().lower()
    if role not in ROLES:
        raise StaffError("role must be support or admin")
    if "@" not in email:
        raise StaffError("a staff email address is needed")
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise StaffError(f"{email} already exists")
    for merchant_id in merchant_ids or []:
        if db.session.get(Merchant, merchant_id) is None:
            raise StaffError(f"no merchant {merchant_id}")
    password = password or secrets.token_urlsafe(12)
    if len(password) < 12:
        raise StaffError("passwords have at least 12 characters")
    user = StaffUser(
        email=email,
        password_hash=HASHER.hash(password),
        role=role,
        merchant_ids=list(merchant_ids or []),
        totp_secret=pyotp.random_base32() if role == "admin" else None,
        failed_logins=0,
    )
    db.session.add(user)
    db.session.flush()
    return user, password


def enable_totp(user: StaffUser) -> str:
    user.totp_secret = pyotp.random_base32()
    return user.totp_secret


def totp_uri(user: StaffUser) -> str | None:
    if not user.totp_secret:
        return None
    return pyotp.TOTP(user.totp_secret).provisioning_uri(
        name=user.email, issuer_name="Payment portal"
    )


def authenticate(email: str, password: str, code: str | None) -> StaffUser:
    """The user, or :class:`LoginFailed` (commits failure counters)."""
    user = db.session.scalars(
        select(StaffUser).where(StaffUser.email == (email or "").strip().lower())
    ).first()
    now = utcnow()
    try:
        HASHER.verify(user.password_hash if user else _DUMMY_HASH, password or "")
        password_ok = user is not None
    except (VerificationError, InvalidHashError):
        password_ok = False
    if user is None:
        raise LoginFailed
    if user.locked_until and user.locked_until > now:
        raise LoginFailed
    code_ok = True
    if user.totp_secret or user.is_admin:
        code_ok = bool(
            user.totp_secret and code and pyotp.TOTP(user.totp_secret).verify(code, valid_window=1)
        )
    if not (password_ok and code_ok):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        db.session.flush()
        raise LoginFailed
    user.failed_logins = 0
    user.locked_until = None
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    db.session.flush()
    return user


def start_session(user: StaffUser) -> str:
    """A brand-new session id at every login (never reuse one from before)."""
    session = StaffSession(id=secrets.token_urlsafe(32), user_id=user.id)
    db.session.add(session)
    db.session.flush()
    return session.id


def load_session(session_id: str | None) -> StaffSession | None:
    """The live session, touched; expired ones (idle 30 min, 12 h in all) are deleted."""
    if not session_id:
        return None
    session = db.session.get(StaffSession, session_id)
    if session is None:
        return None
    now = utcnow()
    if now - session.last_seen_at > IDLE_TIMEOUT or now - session.created_at > ABSOLUTE_TIMEOUT:
        db.session.delete(session)
        db.session.flush()
        return None
    if now - session.last_seen_at > timedelta(seconds=30):
        session.last_seen_at = now
        db.session.flush()
    return session


def end_session(session_id: str | None) -> None:
    if session_id:
        db.session.query(StaffSession).filter_by(id=session_id).delete()
        db.session.flush()
