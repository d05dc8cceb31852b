from __future__ import annotations

import io
import json
import logging

import pytest

from portal import logs


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("werkzeug", logging.INFO, __file__, 1, message, args or None, None)


def test_access_log_masks_link_tokens():
    record = _record(
        '127.0.0.1 - - "GET /p/pr_5kWqAbCdEfGhIjKlMnOpQr.sigSIGsig-_x/pay?x=1 HTTP/1.1" 200 -'
    )
    assert logs.MaskSecrets().filter(record)
    message = record.getMessage()
    assert "pr_5kWqAbCdEfGhIjKlMnOpQr" in message  # the request id is not a secret
    assert "sigSIG" not in message
    assert "/pay?x=1" in message


@pytest.mark.parametrize(
    ("secret", "kept"),
    [
        ("https://pay.example/p/pr_abc123.Zx9_sig-nat-ure", "pr_abc123"),
        ("/p/forgedtoken-with-no-id-at-all", "/p/"),
        ("sk_portal_4f9aK2mZq81LxYtRw0PzNvBc", "sk_portal_"),
        ("sk_live_51HxYzAbCdEf", "sk_live_"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"),
        ("pi_3Nabc_secret_Q1w2E3r4", "pi_3Nabc_secret_"),
        ("jeanne.dupont@example.be", "@example.be"),
        ("+32470123467", "67"),
        ("+33 6 12 34 56 78", "78"),
    ],
)
def test_secrets_and_personal_data_are_masked(secret, kept):
    record = _record("value %s in a sentence", secret)
    logs.MaskSecrets().filter(record)
    message = record.getMessage()
    assert secret not in message
    assert kept in message
    assert message.startswith("value ") and message.endswith(" in a sentence")


def test_ordinary_values_are_left_alone():
    text = "payment pay_01HXYZ succeeded: 12,345 EUR at 2026-11-22T10:00:00+00:00 seq=42"
    assert logs.mask(text) == text


def test_json_lines_carry_masked_exceptions_and_extras():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.MaskSecrets())
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("portal.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("customer jeanne@example.be refused")
        except ValueError:
            logger.exception("failed for %s", "+32470123467", extra={"status": 500})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "error"
    assert entry["logger"] == "portal.test-json"
    assert entry["status"] == 500
    assert "+32470123467" not in entry["message"]
    assert "ValueError" in entry["exception"]
    assert "jeanne@example.be" not in entry["exception"]


def test_text_lines_carry_masked_exceptions():
    """The text format masks tracebacks too: MaskSecrets masks exc_text before formatting."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.MaskSecrets())
    handler.setFormatter(logging.Formatter(logs.TEXT_FORMAT))
    logger = logging.getLogger("portal.test-text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("customer jeanne@example.be refused")
        except ValueError:
            logger.exception("failed for %s", "+32470123467")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "ValueError" in text and "failed for" in text
    assert "jeanne@example.be" not in text and "+32470123467" not in text


ID = "pr_5kWqAbCdEfGhIjKlMnOpQr"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/p/pr_5kWqAbCdEfGhIjKlMnOpQr.sigSIGsig-_x/pay", "/p/pr_5kWqAbCdEfGhIjKlMnOpQr.…/pay"),
        ("/p/pr_5kWqAbCdEf\u200bGhIjKlMnOpQr.sigSIGsig/qr.svg", "/p/…/qr.svg"),
        ("/p/pr_5kWqAbCdEfGhIjKlMnOpQr.sigSIG\u200bsig-_x", "/p/pr_5kWqAbCdEfGhIjKlMnOpQr.…"),
        ("/p/pr_5kWqAbCdEfGhIjKlMnOpQrsigSIGsig", "/p/pr_5kWqAbCdEfGhIjKlMnOpQr.…"),
        (f"/p/{ID} sig SIG/receipt/pay_1", f"/p/{ID}.…/receipt/pay_1"),
        (f"/p/{ID}/sigSIGsig/checkout", f"/p/{ID}.…/…/checkout"),
        ("/p/short", "/p/…"),
        ("/pay/x", "/pay/x"),
    ],
)  # fmt: skip
def test_every_link_path_is_masked_whatever_it_contains(path, expected):
    assert logs.mask_path(path) == expected
    assert logs.mask(f'"GET {path}" 404') == f'"GET {expected}" 404' or " " in path


def test_text_lines_name_the_caller_on_their_first_line():
    record = _record("refund %s", "pay_1")
    record.merchant, record.api_key = "mer_1", "key_1"
    record.exc_text = "Traceback (most recent call last):\nValueError: x"
    line = logs.TextFormatter(logs.TEXT_FORMAT).format(record)
    first, _, rest = line.partition("\n")
    assert first.endswith("refund pay_1 merchant=mer_1 api_key=key_1")
    assert rest.startswith("Traceback") and "merchant=" not in rest
    plain = logs.TextFormatter(logs.TEXT_FORMAT).format(_record("no caller"))
    assert "merchant=" not in plain
