from __future__ import annotations

import logging

from portal.web import MaskTokens


def test_access_log_masks_link_tokens():
    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1,
        '127.0.0.1 - - "GET /p/pr_5kWqAbCdEfGhIjKlMnOpQr.sigSIGsig-_x/pay?x=1 HTTP/1.1" 200 -',
        None, None,
    )  # fmt: skip
    assert MaskTokens().filter(record)
    message = record.getMessage()
    assert "pr_5kWqAbCd" in message
    assert "EfGh" not in message and "sigSIG" not in message
    assert "/pay?x=1" in message
