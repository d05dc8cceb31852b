"""Logging: one handler on the root logger, text or JSON lines, secrets masked.

Every record leaving the process goes through :class:`MaskSecrets`: link
tokens keep their public request id but lose their signature, API keys,
webhook secrets and client secrets keep only their prefix, email addresses
their first letter and domain, phone numbers their last two digits. Records
made during a request carry its ``request_id`` (``X-Request-Id``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from flask import g, has_request_context

HANDLER_NAME = "portal"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A link token is "pr_<id>.<signature>": the signature is the secret part.
    (re.compile(r"\b(pr_[A-Za-z0-9]+)\.[A-Za-z0-9_\-]{6,}"), r"\1.…"),
    # Any other /p/<token> path (tampered or foreign tokens too).
    (re.compile(r"(/p/)(?!pr_[A-Za-z0-9]+\.…)[A-Za-z0-9_.\-]{12,}"), r"\1…"),
    (re.compile(r"\b(sk_portal_|sk_live_|sk_test_|rk_live_|rk_test_)[A-Za-z0-9_\-]+"), r"\1…"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"), "whsec_…"),
    (re.compile(r"\b(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+"), r"\1_secret_…"),
    (re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})\b"), r"\1…@\2"),
    (re.compile(r"(?<![\w+])\+\d[\d \-]{5,16}(\d\d)\b"), r"+…\1"),
]


def mask(text: str) -> str:
    """``text`` with every secret or personal value we know how to spot masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Structured fields views may attach with ``extra=``; masked like the message.
EXTRAS = ("method", "path", "status", "duration_ms", "client", "event")


class MaskSecrets(logging.Filter):
    """Masks the formatted message (arguments included) and adds the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string still gets logged, as is
            message = str(record.msg)
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        for key in EXTRAS:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, mask(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    extras = EXTRAS

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for key in self.extras:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


# Tracebacks need no masking here: MaskSecrets has already masked the record's exc_text.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(log_format: str, level: int = logging.INFO, stream=None) -> logging.Handler:
    """Install (or re-shape) the portal's handler on the root logger; returns it."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.set_name(HANDLER_NAME)
        handler.addFilter(MaskSecrets())
        root.addHandler(handler)
    text = logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(JsonFormatter() if log_format == "json" else text)
    root.setLevel(level)
    # Library loggers that keep their own handlers: route them through ours.
    for name in ("werkzeug", "gunicorn.error", "flask.app"):
        logger = logging.getLogger(name)
        for own in list(logger.handlers):
            if own is not handler:
                logger.removeHandler(own)
        logger.propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler
