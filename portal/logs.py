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
    (re.compile(r"\b(sk_portal_|sk_live_|sk_test_|rk_live_|rk_test_)[A-Za-z0-9_\-]+"), r"\1…"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"), "whsec_…"),
    (re.compile(r"\b(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+"), r"\1_secret_…"),
    (re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})\b"), r"\1…@\2"),
    (re.compile(r"(?<![\w+])\+\d[\d \-]{5,16}(\d\d)\b"), r"+…\1"),
    # An unsubscribe link (portal/reminders/views.py): its token, whole.
    (re.compile(r"/u/[^\s\"'<>?#]+"), "/u/…"),
]


# A /p/ (or /s/, short link) path in a line of text: up to a blank, a quote, an angle
# bracket or the query.
_LINK_PATH = re.compile(r"/[ps]/[^\s\"'<>?#]*")
_MASKED_TOKEN = re.compile(r"pr_[A-Za-z0-9]+\.…")
_LINK_ID = re.compile(r"pr_[A-Za-z0-9]{22}")
# What may follow a link token in the clear: the customer pages' own words, payment ids.
_LINK_WORDS = re.compile(r"pay|checkout|return|receipt|qr\.svg|qr\.png|3ds|pay_[A-Za-z0-9]{1,40}")


def mask_path(path: str) -> str:
    """A ``/p/…`` path with its token masked whatever it contains (a zero-width space, a
    missing dot, a slash, blanks): only a request id and the pages' own words stay. A
    ``/s/…`` short link is masked whole: its code alone opens the page."""
    if path.startswith("/u/"):
        return "/u/…"
    if path.startswith("/s/"):
        return "/s/…" if len(path) > 3 else path
    if not path.startswith("/p/"):
        return path
    token, *rest = path[3:].split("/")
    if _MASKED_TOKEN.fullmatch(token):
        shown = token
    else:
        head = _LINK_ID.match(token)
        shown = f"{head.group(0)}.…" if head else ("…" if token else "")
    words = [word if _LINK_WORDS.fullmatch(word) or not word else "…" for word in rest]
    return "/".join(["/p", shown, *words])


def mask(text: str) -> str:
    """``text`` with every secret or personal value we know how to spot masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _LINK_PATH.sub(lambda found: mask_path(found.group(0)), text)


# Structured fields views may attach with ``extra=``; masked like the message.
EXTRAS = ("method", "path", "status", "duration_ms", "client", "event", "merchant", "api_key")
# Who is calling, set by the API's authentication (plain ids, never an ORM object).
CALLER = ("merchant", "api_key")


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
        _add_request_context(record)
        return True


def _add_request_context(record: logging.LogRecord) -> None:
    """The request id and, on an authenticated API call, the merchant and the key id."""
    if not hasattr(record, "request_id"):
        record.request_id = g.get("request_id") if has_request_context() else None
    if has_request_context():
        for key in CALLER:
            if not hasattr(record, key) and g.get(f"log_{key}"):
                setattr(record, key, g.get(f"log_{key}"))


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


class TextFormatter(logging.Formatter):
    """The text line, with the calling merchant and API key appended when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        caller = [f"{key}={getattr(record, key)}" for key in CALLER if getattr(record, key, None)]
        if not caller:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} {' '.join(caller)}{newline}{rest}"


def configure(log_format: str, level: int = logging.INFO, stream=None) -> logging.Handler:
    """Install (or re-shape) the portal's handler on the root logger; returns it."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.set_name(HANDLER_NAME)
        handler.addFilter(MaskSecrets())
        root.addHandler(handler)
    text = TextFormatter(TEXT_FORMAT)
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
