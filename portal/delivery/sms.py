"""SMS transports from ``PORTAL_SMS_URL``: ``twilio://SID:TOKEN@FROM`` or ``console``.

``twilio://…?api_base=http://127.0.0.1:N`` points the Twilio SDK at another
origin; the tests use it to record the SDK's real HTTP requests.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

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


def send_sms(url: str, to: str, body: str) -> str:
    """Send ``body`` to ``to`` (E.164); returns the provider's message id."""
    if url == "console":
        message_id = f"console-{uuid.uuid4().hex[:12]}"
        log.info("SMS to %s (%s): %s", to, message_id, body)
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
