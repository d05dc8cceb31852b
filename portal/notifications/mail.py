"""Outgoing email: rendering in the recipient's locale, and the transport.

Transport from ``PORTAL_MAIL_URL``:

- ``smtp://user:pass@host:port`` (add ``?starttls=1`` for STARTTLS), ``smtps://…`` for SSL;
- ``file:///abs/folder`` or ``file://relative/folder``: one ``.eml`` per message (embedded default);
- ``console``: the message is logged.

Only jobs call :func:`send_mail` (after the commit that asked for the mail).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import uuid
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app, render_template
from flask_babel import force_locale

from portal.config import ROOT

log = logging.getLogger(__name__)
# (file name, MIME type, content): a receipt's PDF.
Attachment = tuple[str, str, bytes]


def render_mail(name: str, locale: str, **context: object) -> tuple[str, str, str]:
    """(subject, text, html) from ``templates/email/<name>/``, rendered in ``locale``."""
    with force_locale(locale or "en"):
        subject = render_template(f"email/{name}/subject.txt", **context)
        text = render_template(f"email/{name}/body.txt", **context)
        html = render_template(f"email/{name}/body.html", **context)
    return " ".join(subject.split()), text, html


def build_message(
    to: str,
    subject: str,
    text: str,
    html: str | None,
    *,
    from_name: str | None = None,
    reply_to: str | None = None,
    attachments: Sequence[Attachment] = (),
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    sender = current_app.config["PORTAL_MAIL_FROM"]
    message = EmailMessage()
    message["From"] = formataddr((from_name or "", sender)) if from_name else sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "portal.localhost")
    if reply_to:
        message["Reply-To"] = reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    for filename, mimetype, data in attachments:
        maintype, _, subtype = mimetype.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


def send_mail(
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    *,
    from_name: str | None = None,
    reply_to: str | None = None,
    attachments: Sequence[Attachment] = (),
    headers: dict[str, str] | None = None,
) -> str:
    """Send one message through the configured transport; returns its Message-ID."""
    message = build_message(
        to, subject, text, html, from_name=from_name, reply_to=reply_to,
        attachments=attachments, headers=headers,
    )  # fmt: skip
    deliver(message, current_app.config["PORTAL_MAIL_URL"])
    return message["Message-ID"]


def send_merchant_mail(
    merchant: Any,
    to: str,
    name: str,
    locale: str,
    attachments: Sequence[Attachment] = (),
    headers: dict[str, str] | None = None,
    **context: object,
) -> str:
    """A customer email on a merchant's behalf: rendered in ``locale``, from the merchant's
    display name, replies going to its support address. Returns the Message-ID."""
    subject, text, html = render_mail(name, locale, merchant=merchant, **context)
    return send_mail(
        to, subject, text, html, from_name=merchant.display_name,
        reply_to=merchant.support_email, attachments=attachments, headers=headers,
    )  # fmt: skip


def mail_folder(url: str) -> Path | None:
    """The folder a ``file://`` PORTAL_MAIL_URL writes to (relative to the project's
    folder), or None for the other transports."""
    if not url.startswith("file://"):
        return None
    folder = Path(url[len("file://") :])
    return folder if folder.is_absolute() else ROOT / folder


def _plain_text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return "" if body is None else str(body.get_content())


def deliver(message: EmailMessage, url: str) -> None:
    if url == "console":
        log.info(
            "mail to %s: %s\n%s",
            message["To"],
            message["Subject"],
            _plain_text(message),
        )
        return
    folder = mail_folder(url)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: a reader (the development mail viewer) never
        # sees half a message.
        name = uuid.uuid4().hex
        partial = folder / f".{name}.partial"
        partial.write_bytes(bytes(message))
        os.replace(partial, folder / f"{name}.eml")
        return
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"unsupported PORTAL_MAIL_URL scheme {parts.scheme!r}")
    options = parse_qs(parts.query)
    host = parts.hostname or "localhost"
    timeout = 30
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, parts.port or 465, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=timeout)
    with client:
        if parts.scheme == "smtp" and options.get("starttls", ["0"])[0] in ("1", "true"):
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
