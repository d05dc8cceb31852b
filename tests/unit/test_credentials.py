"""portal/credentials.py: argon2 passwords, and TOTP codes good once."""

from __future__ import annotations

import pyotp

from portal import credentials

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
AT = 1_800_000_000.0  # a fixed instant: step 60,000,000


def code(step: int) -> str:
    return pyotp.TOTP(SECRET).generate_otp(step)


def test_passwords_verify_only_themselves():
    hashed = credentials.hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert credentials.verify_password(hashed, "correct horse battery")
    assert not credentials.verify_password(hashed, "correct horse batterY")
    assert not credentials.verify_password(None, "correct horse battery")
    assert not credentials.verify_password("not a hash", "x")


def test_a_code_is_taken_once_and_never_an_older_one():
    now = credentials.current_step(AT)
    assert credentials.verify_totp(SECRET, code(now), None, AT) == now
    assert credentials.verify_totp(SECRET, code(now), now, AT) is None  # replayed
    assert credentials.verify_totp(SECRET, code(now - 1), now, AT) is None  # older
    assert credentials.verify_totp(SECRET, code(now + 1), now, AT) == now + 1  # clock ahead


def test_drift_of_one_step_only_and_malformed_codes():
    now = credentials.current_step(AT)
    assert credentials.verify_totp(SECRET, code(now - 1), None, AT) == now - 1
    assert credentials.verify_totp(SECRET, code(now - 2), None, AT) is None
    assert credentials.verify_totp(SECRET, code(now + 2), None, AT) is None
    for bad in ("", None, "12345", "1234567", "abcdef", "12 34 5x"):
        assert credentials.verify_totp(SECRET, bad, None, AT) is None, bad
    assert credentials.verify_totp(None, code(now), None, AT) is None
    spaced = code(now)[:3] + " " + code(now)[3:]
    assert credentials.verify_totp(SECRET, spaced, None, AT) == now
