"""The ``.eml`` files a ``file://`` PORTAL_MAIL_URL writes, read back for the mail viewer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

# Names the transport gives its files (uuid4 hex), and nothing that could climb out.
NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
URL = re.compile(r"https?://[^\s<>\"')\]]+")


@dataclass
class Mail:
    name: str
    subject: str
    to: str
    sender: str
    written_at: datetime
    sent_at: datetime | None = None
    reply_to: str = ""
    message_id: str = ""
    text: str | None = None
    html: str | None = None
    links: list[str] = field(default_factory=list)


def _parse(path: Path, *, bodies: bool) -> Mail:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    try:
        sent_at = parsedate_to_datetime(message["Date"]) if message["Date"] else None
    except (TypeError, ValueError):
        sent_at = None
    mail = Mail(
        name=path.stem,
        subject=str(message["Subject"] or "(no subject)"),
        to=str(message["To"] or ""),
        sender=str(message["From"] or ""),
        written_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        sent_at=sent_at,
        reply_to=str(message["Reply-To"] or ""),
        message_id=str(message["Message-ID"] or ""),
    )
    if bodies:
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        mail.text = text.get_content() if text is not None else None
        mail.html = html.get_content() if html is not None else None
        mail.links = list(dict.fromkeys(URL.findall(mail.text or "")))
    return mail


def recent(folder: Path | None, limit: int = 50) -> tuple[list[Mail], int]:
    """The newest ``limit`` messages (newest first) and how many there are in all."""
    if folder is None or not folder.is_dir():
        return [], 0
    dated = []
    for path in folder.glob("*.eml"):
        try:
            dated.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:  # removed meanwhile
            continue
    dated.sort(reverse=True)
    mails = []
    for _, _, path in dated[:limit]:
        try:
            mails.append(_parse(path, bodies=False))
        except (FileNotFoundError, ValueError):
            continue
    return mails, len(dated)


def read(folder: Path | None, name: str) -> Mail | None:
    """One message with its text and HTML parts; None when there is no such file."""
    if folder is None or not NAME.fullmatch(name):
        return None
    path = folder / f"{name}.eml"
    if not path.is_file():
        return None
    return _parse(path, bodies=True)
