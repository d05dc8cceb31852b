"""Sending a customer their link by email or SMS, through the job queue."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import select

from portal.api.schemas import normalise_email, normalise_phone
from portal.dates import formatting_locale, local_day
from portal.db_types import utcnow
from portal.delivery.models import LinkDelivery
from portal.delivery.shortlinks import short_code, short_url
from portal.delivery.sms import fit_one_segment, send_sms, sms_log_file
from portal.errors import Conflict, Invalid
from portal.extensions import db
from portal.jobs.queue import RetryLater, enqueue, job_handler
from portal.links import link_url
from portal.money import format_money
from portal.notifications.mail import send_merchant_mail
from portal.payment_requests.models import PaymentRequest
from portal.reminders.optouts import unsubscribe_url
from portal.states import LinkDeliveryStatus, RequestStatus

log = logging.getLogger(__name__)

CHANNELS = ("email", "sms")
MAX_ATTEMPTS = 5
SENDABLE = (RequestStatus.OPEN, RequestStatus.PARTIALLY_PAID)


def mask(channel: str, destination: str) -> str:
    """``j***@example.com`` / ``+32******456``: enough for support, not the address."""
    if channel == "email":
        local, _, domain = destination.partition("@")
        return f"{local[:1]}***@{domain}"
    return destination[:3] + "*" * max(len(destination) - 6, 0) + destination[-3:]


def _checked(normalise: Any, value: Any, code: str, message: str) -> str:
    try:
        return str(normalise(value if isinstance(value, str) else ""))
    except ValueError:
        raise Invalid(code, message, "to") from None


def _destination(pr: PaymentRequest, channel: str, to: Any) -> str:
    if channel == "email":
        if to is not None:
            return _checked(
                normalise_email, to, "invalid_email", "to is not a valid email address."
            )
        if not pr.customer_email:
            raise Invalid("missing_destination", "This customer has no email address.", "to")
        return pr.customer_email
    if to is not None:
        return _checked(normalise_phone, to, "invalid_phone", "to is not a valid phone number.")
    if not pr.customer_phone:
        raise Invalid("missing_destination", "This customer has no phone number.", "to")
    return pr.customer_phone


def send_link(pr: PaymentRequest, channel: Any, to: Any = None) -> LinkDelivery:
    """Queue the link for sending (in the caller's transaction); refuses paid or closed links."""
    if channel not in CHANNELS:
        raise Invalid("invalid_channel", "channel must be email or sms.", "channel")
    if pr.status not in SENDABLE or pr.is_expired():
        raise Conflict("link_not_sendable", f"A {pr.status} payment request cannot be sent.")
    destination = _destination(pr, channel, to)
    delivery = LinkDelivery(
        request_id=pr.id,
        merchant_id=pr.merchant_id,
        channel=channel,
        destination=mask(channel, destination),
        locale=pr.customer_locale or pr.merchant.default_locale or "en",
        status=LinkDeliveryStatus.QUEUED,
        attempts=0,
    )
    db.session.add(delivery)
    db.session.flush()
    if channel == "sms":
        short_code(pr.id)  # made here: the SMS never carries a code a rollback undid
    enqueue(
        "send_link",
        {"delivery_id": delivery.id, "to": destination},
        max_attempts=MAX_ATTEMPTS + 1,
    )
    return delivery


def deliveries_for(request_id: str) -> list[LinkDelivery]:
    return list(
        db.session.scalars(
            select(LinkDelivery)
            .where(LinkDelivery.request_id == request_id)
            .order_by(LinkDelivery.created_at, LinkDelivery.id)
        )
    )


def _amount_text(pr: PaymentRequest, locale: str) -> str | None:
    amount = pr.amount_due if pr.amount is not None else None
    return None if amount is None else format_money(amount, pr.currency, locale)


# (shop's name, amount or None, URL) -> the message, in the locale forced around it.
Wording = Callable[[str, str | None, str], str]


def one_segment_sms(pr: PaymentRequest, locale: str, wording: Wording, url: str) -> str:
    """A customer SMS about ``pr`` in one segment: ``wording`` renders it in ``locale``
    (no-break spaces made plain), and the shop's name is shortened by the rule of
    :func:`fit_one_segment` when the message would not fit. Every link SMS goes
    through here — the reminders too, with ``short_url(pr.id)`` for ``url`` (make the
    code with ``short_code`` in the transaction that schedules the SMS)."""
    amount = _amount_text(pr, locale)

    def render(name: str) -> str:
        with force_locale(locale):
            text = wording(name, amount, url)
        return text.replace("\u202f", " ").replace("\xa0", " ")

    return fit_one_segment(render, pr.merchant.display_name)


def _link_wording(name: str, amount: str | None, url: str) -> str:
    if amount:
        return gettext("%(merchant)s: please pay %(amount)s here: %(url)s",
                       merchant=name, amount=amount, url=url)  # fmt: skip
    return gettext("%(merchant)s: top up your wallet here: %(url)s", merchant=name, url=url)


def sms_text(pr: PaymentRequest, locale: str, url: str) -> str:
    """The link SMS in one segment (160 GSM-7 characters) in every language."""
    return one_segment_sms(pr, locale, _link_wording, url)


def _reminder_wording(name: str, amount: str | None, url: str) -> str:
    if amount:
        return gettext("Reminder from %(merchant)s: %(amount)s to pay: %(url)s",
                       merchant=name, amount=amount, url=url)  # fmt: skip
    return gettext(
        "Reminder from %(merchant)s: top up your wallet: %(url)s", merchant=name, url=url
    )


def reminder_sms_text(pr: PaymentRequest, locale: str, url: str, stop_url: str) -> str:
    """A reminder by SMS: what is due and the short link in one segment (as a link SMS),
    then how to stop reminders, whose signed link makes it a second segment."""
    with force_locale(locale):
        stop = gettext("No more reminders: %(url)s", url=stop_url)
    return one_segment_sms(pr, locale, _reminder_wording, url) + " " + stop


def _send(delivery: LinkDelivery, to: str) -> str:
    pr = db.session.get_one(PaymentRequest, delivery.request_id)
    locale = delivery.locale
    merchant = pr.merchant
    reminder = delivery.reminder_id is not None
    stop = unsubscribe_url(merchant.id, delivery.channel, to, locale) if reminder else None
    if delivery.channel == "sms":
        config = current_app.config
        short = short_url(pr.id)
        text = reminder_sms_text(pr, locale, short, stop) if stop else sms_text(pr, locale, short)
        return send_sms(config["PORTAL_SMS_URL"], to, text, log_file=sms_log_file(config))
    url = link_url(pr.id)
    dates = formatting_locale(locale, merchant.country)
    due = local_day(pr.due_date, "long", dates, merchant.time_zone) if pr.due_date else None
    expires = local_day(pr.expires_at, "long", dates, merchant.time_zone)
    return send_merchant_mail(
        merchant,
        to,
        "reminder" if reminder else "link",
        locale,
        pr=pr,
        url=url,
        amount=_amount_text(pr, locale),
        due_date=due,
        expires=expires,
        unsubscribe_url=stop,
        # One-click unsubscribe (RFC 8058): the mail client POSTs to the same link.
        headers={"List-Unsubscribe": f"<{stop}>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"} if stop else None,
    )  # fmt: skip


def _overtaken(delivery: LinkDelivery) -> bool:
    """A reminder whose request was paid, voided or expired since it was decided: it
    does not go (a link the merchant asked for goes as asked)."""
    if delivery.reminder_id is None:
        return False
    pr = db.session.get_one(PaymentRequest, delivery.request_id)
    return pr.status not in SENDABLE or pr.is_expired()


@job_handler("send_link")
def send_link_job(payload: dict[str, Any]) -> None:
    """Send one link; a failure is recorded on the delivery and retried, then marked failed."""
    delivery = db.session.get(LinkDelivery, payload["delivery_id"])
    if delivery is None or delivery.status != LinkDeliveryStatus.QUEUED:
        return
    delivery_id = delivery.id
    if _overtaken(delivery):
        delivery.status = LinkDeliveryStatus.CANCELED
        return
    try:
        message_id = _send(delivery, payload["to"])
    except Exception as exc:  # any transport failure: record, then retry or give up
        db.session.rollback()
        delivery = db.session.get_one(LinkDelivery, delivery_id)
        delivery.attempts += 1
        delivery.error = f"{type(exc).__name__}: {exc}"[:500]
        final = delivery.attempts >= MAX_ATTEMPTS
        if final:
            delivery.status = LinkDeliveryStatus.FAILED
        log.warning("link delivery %s failed (attempt %s): %s", delivery_id, delivery.attempts, exc)
        if not final:
            raise RetryLater(delivery.error) from exc
        return
    delivery.attempts += 1
    delivery.status = LinkDeliveryStatus.SENT
    delivery.provider_message_id = message_id
    delivery.sent_at = utcnow()
    delivery.error = None
