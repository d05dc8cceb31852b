"""Signed customer links: ``<base>/p/<token>``.

The token carries only the request's opaque id, signed with itsdangerous
(one salt per purpose, the newest key signs, every configured key verifies).
Expiry and voiding are decided by the database, not by the token.
"""

from __future__ import annotations

import hashlib

from flask import current_app
from itsdangerous import BadSignature, Signer

LINK_SALT = "portal.payment-link.v1"
# The customer's forms carry a token bound to their link instead of a session cookie's:
# it works inside a merchant's frame, where a browser sends no cookie of ours.
FORM_SALT = "portal.customer-form.v1"


def _signer(salt: str) -> Signer:
    keys = current_app.config["PORTAL_SECRET_KEYS"]
    # itsdangerous signs with the last key of the list; settings list the newest first.
    return Signer(list(reversed(keys)), salt=salt, digest_method=hashlib.sha256)


def sign(value: str, salt: str) -> str:
    return _signer(salt).sign(value.encode()).decode()


def unsign(token: str, salt: str) -> str | None:
    """The signed value, or None for anything tampered, truncated or foreign."""
    if not token or len(token) > 200:
        return None
    try:
        return _signer(salt).unsign(token.encode()).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


def form_token(request_id: str) -> str:
    """The CSRF token of a link's forms: only who can read the link's page has it."""
    return _signer(FORM_SALT).get_signature(request_id.encode()).decode()


def check_form_token(request_id: str, token: str | None) -> bool:
    """Whether ``token`` is this link's form token (under any configured key)."""
    if not token or len(token) > 200:
        return False
    try:
        return _signer(FORM_SALT).verify_signature(request_id.encode(), token.encode())
    except UnicodeError:
        return False


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
