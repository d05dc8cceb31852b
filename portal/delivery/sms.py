"""SMS transports from ``PORTAL_SMS_URL``: ``twilio://SID:TOKEN@FROM`` or ``console``.

``twilio://…?api_base=http://127.0.0.1:N`` points the Twilio SDK at another
origin; the tests use it to record the SDK's real HTTP requests.

``console`` writes each SMS to the log and, where a file log is set
(``PORTAL_SMS_LOG``; ``var/sms.log`` in development), appends it there as one
JSON line, so the development start page can show what was sent. The file
keeps the newest :data:`LOG_KEEP` messages or so.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from portal.config import ROOT
from portal.db_types import isoformat, utcnow

log = logging.getLogger(__name__)

# The file log is trimmed to LOG_KEEP lines once it grows past LOG_MAX_BYTES.
LOG_KEEP = 200
LOG_MAX_BYTES = 256 * 1024
_log_lock = threading.Lock()

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")


def gsm7_length(text: str) -> int | None:
    """Septets ``text`` needs in GSM-7, or None when it cannot be sent in GSM-7."""
    length = 0
    for char in text:
        if char in GSM7_BASIC:
            length += 1
        elif char in GSM7_EXTENDED:
            length += 2
        else:
            return None
    return length


GSM7_SINGLE, GSM7_PART = 160, 153  # septets: one message; each part of a long one
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units, the same way


@dataclass(frozen=True)
class Segments:
    """How an SMS travels: its encoding, its length in that encoding's units (septets
    for GSM-7, an extension-table character counting 2; UTF-16 code units for UCS-2, a
    character outside the BMP counting 2) and how many messages it takes."""

    encoding: str  # "gsm7" or "ucs2"
    units: int
    count: int


def _parts(sizes: list[int], single: int, part: int) -> int:
    """Messages for characters of these sizes: one when they fit ``single``, else parts
    of ``part`` units, a character never split across two (an escape pair, a surrogate
    pair)."""
    if sum(sizes) <= single:
        return 1
    count, used = 1, 0
    for size in sizes:
        if used + size > part:
            count, used = count + 1, 0
        used += size
    return count


def sms_segments(text: str) -> Segments:
    """The segments ``text`` is sent in: GSM-7 when every character has a septet (160 in
    one message, 153 per part), else UCS-2 (70, 67 per part)."""
    if not text:
        return Segments("gsm7", 0, 1)
    if gsm7_length(text) is not None:
        sizes = [2 if char in GSM7_EXTENDED else 1 for char in text]
        return Segments("gsm7", sum(sizes), _parts(sizes, GSM7_SINGLE, GSM7_PART))
    sizes = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return Segments("ucs2", sum(sizes), _parts(sizes, UCS2_SINGLE, UCS2_PART))


def gsm7_name(name: str) -> str:
    """A shop's name in GSM-7 characters only, so one accent never turns a whole SMS into
    UCS-2 (70 characters instead of 160): accents the alphabet lacks are dropped (ç → c,
    ô → o; é, è, à, ü, ñ… are kept: GSM-7 has them), typographic quotes and dashes become
    plain ones, anything else without a septet is left out."""
    plain = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
             "\u2014": "-", "\u2026": "...", "\xa0": " ", "\u202f": " ", "\u0153": "oe",
             "\u0152": "OE"}  # fmt: skip
    out = []
    for char in name:
        char = plain.get(char, char)
        if gsm7_length(char) is None:
            char = "".join(c for c in unicodedata.normalize("NFKD", char)
                           if gsm7_length(c) is not None)  # fmt: skip
        out.append(char)
    return " ".join("".join(out).split())


def fit_one_segment(render: Callable[[str], str], name: str, minimum: int = 3) -> str:
    """``render(name)`` in one SMS, the shop's name made to fit (the rule, for every link
    SMS: docs/merchant-console.md). The name is first written in GSM-7 characters
    (:func:`gsm7_name`); while the message is longer than one segment the name is cut
    at the length that fits and ends with "." (at least ``minimum`` characters are
    kept). Returns the shortest form tried when even that does not fit."""
    name = gsm7_name(name) or "?"
    text = render(name)
    while sms_segments(text).count > 1 and len(name) > minimum + 1:
        over = sms_segments(text).units - (GSM7_SINGLE if sms_segments(text).encoding ==
                                           "gsm7" else UCS2_SINGLE)  # fmt: skip
        keep = max(len(name.rstrip(".")) - over - 1, minimum)
        name = name[:keep].rstrip() + "."
        text = render(name)
    return text


def sms_log_file(config: Mapping[str, Any]) -> Path | None:
    """Where ``console`` SMS are kept: ``PORTAL_SMS_LOG`` (``off``: nowhere), by default
    ``var/sms.log`` in development and nowhere otherwise. Relative paths are from the
    project's folder."""
    value = config.get("PORTAL_SMS_LOG") or ""
    if value == "off" or (not value and config.get("PORTAL_ENV") != "development"):
        return None
    path = Path(value or "var/sms.log")
    return path if path.is_absolute() else ROOT / path


def _remember(path: Path, entry: dict[str, str | None]) -> None:
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    with _log_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(line)
        if path.stat().st_size > LOG_MAX_BYTES:
            kept = path.read_text(encoding="utf-8").splitlines(keepends=True)[-LOG_KEEP:]
            fresh = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            fresh.write_text("".join(kept), encoding="utf-8")
            os.replace(fresh, path)


def recent_sms(path: Path | None, limit: int = 50) -> list[dict[str, str]]:
    """The newest ``limit`` SMS of the file log, newest first (lines that do not parse
    are skipped)."""
    if path is None or not path.exists():
        return []
    entries = []
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append({k: str(v) for k, v in entry.items()})
        if len(entries) >= limit:
            break
    return entries


def send_sms(url: str, to: str, body: str, *, log_file: Path | None = None) -> str:
    """Send ``body`` to ``to`` (E.164); returns the provider's message id. With ``console``
    the message goes to the log, and to ``log_file`` when one is given."""
    if url == "console":
        message_id = f"console-{uuid.uuid4().hex[:12]}"
        log.info("SMS to %s (%s): %s", to, message_id, body)
        if log_file is not None:
            entry: dict[str, str | None] = {
                "sent_at": isoformat(utcnow()),
                "id": message_id,
                "to": to,
                "body": body,
            }
            _remember(log_file, entry)
        return message_id
    parts = urlsplit(url)
    if parts.scheme != "twilio" or not parts.username or not parts.password:
        raise ValueError("PORTAL_SMS_URL must be 'console' or twilio://SID:TOKEN@FROM")
    from twilio.rest import Client

    client = Client(unquote(parts.username), unquote(parts.password))
    api_base = parse_qs(parts.query).get("api_base")
    if api_base:
        client.api.base_url = api_base[0].rstrip("/")
    # Keep the sender's case (an alphanumeric sender id); "%2B" or "+" before a number.
    sender = unquote(parts.netloc.rpartition("@")[2])
    message = client.messages.create(to=to, from_=sender, body=body)
    return message.sid
