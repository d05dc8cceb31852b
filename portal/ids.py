"""Opaque, prefixed identifiers with 128 bits of randomness (``pr_…``, ``pay_…``)."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def random_token(nbytes: int = 16) -> str:
    """Base62 text of ``nbytes`` random bytes (16 bytes → 22 characters)."""
    number = int.from_bytes(secrets.token_bytes(nbytes), "big")
    length = 22 if nbytes == 16 else len(_encode(256**nbytes - 1))
    return _encode(number).rjust(length, "0")


def _encode(number: int) -> str:
    chars = []
    while number:
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars)) or "0"


def new_id(prefix: str) -> str:
    """A new id such as ``pr_5kWq…``; never a database row number."""
    return f"{prefix}_{random_token()}"
