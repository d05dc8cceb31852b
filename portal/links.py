"""Signed customer links: ``<base>/p/<token>``.

The token carries only the request's opaque id, signed with itsdangerous
(one salt per purpose, the newest key signs, every configured key verifies).
Expiry and voiding are decided by the database, not by the token.
"""

from __future__ import annotations

import base64
import hashlib
import re

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, Signer, TimestampSigner

LINK_SALT = "portal.payment-link.v1"
# The customer's forms carry a token bound to their link instead of a session cookie's:
# it works inside a merchant's frame, where a browser sends no cookie of ours.
FORM_SALT = "portal.customer-form.v1"
# A token as the portal writes it. base64 decoding skips characters outside its alphabet,
# so a zero-width space or an accent inside the signature would still verify: refused.
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


def _signer(salt: str) -> Signer:
    keys = current_app.config["PORTAL_SECRET_KEYS"]
    # itsdangerous signs with the last key of the list; settings list the newest first.
    return Signer(list(reversed(keys)), salt=salt, digest_method=hashlib.sha256)


def sign(value: str, salt: str) -> str:
    return _signer(salt).sign(value.encode()).decode()


def unsign(token: str, salt: str, max_length: int = 200) -> str | None:
    """The signed value, or None for anything tampered, truncated or foreign."""
    if not token or len(token) > max_length or not _TOKEN.fullmatch(token):
        return None
    try:
        return _signer(salt).unsign(token.encode()).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


def _form_signer() -> TimestampSigner:
    keys = current_app.config["PORTAL_SECRET_KEYS"]
    return TimestampSigner(list(reversed(keys)), salt=FORM_SALT, digest_method=hashlib.sha256)


def form_token(request_id: str) -> str:
    """The CSRF token of a link's forms (``<time>.<signature>``): only who can read the
    link's page has it, and it expires after ``PORTAL_CSRF_TIME_LIMIT`` (a day)."""
    signed = _form_signer().sign(request_id.encode()).decode()
    return signed[len(request_id) + 1 :]


def check_form_token(request_id: str, token: str | None) -> str | None:
    """None when ``token`` is this link's form token under any configured key; else why
    not: ``"expired"`` (a fresh copy of the form helps) or ``"invalid"``."""
    if not token or len(token) > 200 or not _TOKEN.fullmatch(token):
        return "invalid"
    try:
        max_age = current_app.config["PORTAL_CSRF_TIME_LIMIT"]
        _form_signer().unsign(f"{request_id}.{token}".encode(), max_age=max_age)
    except SignatureExpired:
        return "expired"
    except (BadSignature, UnicodeError):
        return "invalid"
    return None


def link_token(request_id: str) -> str:
    return sign(request_id, LINK_SALT)


def request_id_from_token(token: str) -> str | None:
    value = unsign(token, LINK_SALT)
    if value is None or not value.startswith("pr_"):
        return None
    return value


def link_url(request_id: str) -> str:
    return f"{current_app.config['PORTAL_BASE_URL']}/p/{link_token(request_id)}"


def qr_code_url(request_id: str) -> str:
    return f"{link_url(request_id)}/qr.svg"


# The customer's account page (every open request of one customer with one merchant):
# ``<base>/a/<token>``, the token signing "<merchant id> <customer reference>" in base64.
ACCOUNT_SALT = "portal.account-link.v1"


def account_token(merchant_id: str, customer_reference: str) -> str:
    raw = f"{merchant_id}\n{customer_reference}".encode()
    return sign(base64.urlsafe_b64encode(raw).decode().rstrip("="), ACCOUNT_SALT)


def account_from_token(token: str) -> tuple[str, str] | None:
    """(merchant id, customer reference), or None for anything tampered or foreign."""
    value = unsign(token, ACCOUNT_SALT, max_length=400)
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    merchant_id, _, reference = raw.partition("\n")
    if not merchant_id.startswith("mer_") or not reference:
        return None
    return merchant_id, reference


def account_url(merchant_id: str, customer_reference: str) -> str:
    token = account_token(merchant_id, customer_reference)
    return f"{current_app.config['PORTAL_BASE_URL']}/a/{token}"
