"""Password and TOTP primitives shared by the consoles' sign-ins.

Passwords are hashed with argon2 (the library's current parameters; a hash made with
older ones is upgraded at the next sign-in). A TOTP code is accepted once: the caller
keeps the time step of the last code accepted, and a code of that step or an earlier
one is refused, so a code seen over a shoulder or in a log cannot be replayed within
its 30 seconds.
"""

from __future__ import annotations

import secrets
import time

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher()
# Verified against when the account is unknown, so both paths cost the same.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
MIN_PASSWORD = 12
TOTP_PERIOD = 30
ISSUER = "Payment portal"


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; the same work when there is no hash at all."""
    try:
        HASHER.verify(password_hash or _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def current_step(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // TOTP_PERIOD)


def verify_totp(
    secret: str | None, code: str | None, last_step: int | None, at: float | None = None
) -> int | None:
    """The time step ``code`` belongs to (one step of clock drift either way), or None
    when it is wrong or not newer than ``last_step``, the step of the last code
    accepted. The caller stores the step returned, in the same transaction."""
    code = (code or "").replace(" ", "")
    if not secret or not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_PERIOD)
    now = current_step(at)
    for step in (now - 1, now, now + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None
