"""Staff accounts, sign-in (password and TOTP) and the console's server-side sessions."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pyotp
from sqlalchemy import or_, select, update

from portal.credentials import hash_password, needs_rehash, verify_password, verify_totp
from portal.db_types import utcnow
from portal.extensions import db, execute_count
from portal.merchants.models import Merchant
from portal.support.models import AuditLog, StaffSession, StaffUser

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
ROLES = ("support", "admin")
# What the audit log records about accounts, beside the console's actions.
ACCOUNT_EVENTS = (
    "sign_in",
    "sign_in_failed",
    "staff_disabled",
    "staff_enabled",
    "staff_totp_reset",
)


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
        password_hash=hash_password(password),
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
    user.totp_last_step = None
    return user.totp_secret


def find_staff(email: str) -> StaffUser:
    user = db.session.scalars(
        select(StaffUser).where(StaffUser.email == email.strip().lower())
    ).first()
    if user is None:
        raise StaffError(f"no staff account {email}")
    return user


def set_disabled(user: StaffUser, disabled: bool) -> None:
    """Disable (every session ends now, and at its next request whatever happens) or
    enable again (with a clean slate of failures); audited. The caller commits."""
    if disabled:
        user.disabled_at = user.disabled_at or utcnow()
        db.session.query(StaffSession).filter_by(user_id=user.id).delete()
    else:
        user.disabled_at = None
        user.failed_logins = 0
        user.locked_until = None
    _audit_account(user, "staff_disabled" if disabled else "staff_enabled")


def reset_totp(user: StaffUser) -> str:
    """A new TOTP secret (a lost phone): the old codes stop, so do the sessions; audited."""
    enable_totp(user)
    db.session.query(StaffSession).filter_by(user_id=user.id).delete()
    _audit_account(user, "staff_totp_reset")
    return totp_uri(user) or ""


def _audit_account(user: StaffUser, action: str) -> None:
    db.session.add(
        AuditLog(staff_id="cli", staff_email="(command line)", action=action, merchant_id=None,
                 target_id=user.id, reason="flask staff", details={"email": user.email})
    )  # fmt: skip
    db.session.flush()


def totp_uri(user: StaffUser) -> str | None:
    if not user.totp_secret:
        return None
    return pyotp.TOTP(user.totp_secret).provisioning_uri(
        name=user.email, issuer_name="Payment portal"
    )


def authenticate(email: str, password: str, code: str | None, client: str = "") -> StaffUser:
    """The user, or :class:`LoginFailed`. Either way the attempt is in the audit log and
    the failure counters are flushed (the request commits them with the refusal)."""
    typed = (email or "").strip().lower()[:254]
    user = db.session.scalars(select(StaffUser).where(StaffUser.email == typed)).first()
    # An unknown account costs the same work as a known one (portal/credentials.py).
    password_ok = verify_password(user.password_hash if user else None, password)
    refusal = _refusal(user, password_ok, code)
    if refusal:
        _audit_sign_in(user, typed, "sign_in_failed", refusal, client)
        raise LoginFailed
    assert user is not None  # _refusal refuses an unknown account
    user.failed_logins = 0
    user.locked_until = None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    _audit_sign_in(user, typed, "sign_in", "", client)
    return user


def _refusal(user: StaffUser | None, password_ok: bool, code: str | None) -> str:
    """Why this sign-in is refused ("" when it is not); counts a wrong password or code."""
    if user is None:
        return "unknown account"
    if user.disabled_at is not None:
        return "disabled"
    if user.locked_until and user.locked_until > utcnow():
        return "locked"
    if password_ok and (not (user.totp_secret or user.is_admin) or _use_code(user, code)):
        return ""
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILURES:
        user.locked_until = utcnow() + LOCKOUT
        user.failed_logins = 0
    return "wrong password" if not password_ok else "wrong or reused code"


def _use_code(user: StaffUser, code: str | None) -> bool:
    """A code of this time step or a neighbour, newer than the last one accepted; taken
    with a conditional update, so two sign-ins racing with one code cannot both pass."""
    step = verify_totp(user.totp_secret, code, user.totp_last_step)
    if step is None:
        return False
    taken = execute_count(
        update(StaffUser)
        .where(
            StaffUser.id == user.id,
            or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if taken != 1:
        return False
    user.totp_last_step = step
    return True


def _audit_sign_in(
    user: StaffUser | None, typed: str, action: str, refusal: str, client: str
) -> None:
    db.session.add(
        AuditLog(
            staff_id=user.id if user else "",
            staff_email=typed,
            action=action,
            merchant_id=None,
            target_id=user.id if user else "",
            reason=refusal,
            details={"client": client[:64]} if client else {},
        )
    )
    db.session.flush()


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
    stale = now - session.last_seen_at > IDLE_TIMEOUT or now - session.created_at > ABSOLUTE_TIMEOUT
    if stale or session.user.disabled_at is not None:
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
