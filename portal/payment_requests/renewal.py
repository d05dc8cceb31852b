""" "Ask for a new link": the customer of a closed link (expired or void) tells the merchant.

At most once per link per day (``RENEWAL_INTERVAL``) the request is passed on: a
``payment_request.renewal_requested`` event for the merchant's ledger and an e-mail to the
merchant's contact address (its support e-mail, else its console owners), with the
request's reference and a link to it in the console, both in the same transaction. A
request asked again within the day, or a link still open, changes nothing; the customer's
page says the same either way (it discloses nothing).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from portal.db_types import isoformat, utcnow
from portal.extensions import db
from portal.jobs.queue import MAIL_ATTEMPTS, enqueue, job_handler
from portal.ledger.services import record_event
from portal.merchant_console.models import MerchantUser
from portal.notifications.mail import render_mail, send_mail
from portal.payment_requests.models import PaymentRequest
from portal.states import EventType, RequestStatus

log = logging.getLogger(__name__)
RENEWAL_INTERVAL = timedelta(days=1)


def request_renewal(request_id: str, now: datetime | None = None) -> bool:
    """Pass the customer's request on, once a day per link; True when it was passed on.
    Adds and flushes; the boundary commits."""
    now = now or utcnow()
    pr = db.session.scalars(
        select(PaymentRequest)
        .where(PaymentRequest.id == request_id)
        .with_for_update(of=PaymentRequest)
        .execution_options(populate_existing=True)
    ).first()
    if pr is None or not (pr.status == RequestStatus.VOID or pr.is_expired(now)):
        return False
    last = pr.renewal_requested_at
    if last is not None and now - last < RENEWAL_INTERVAL:
        return False
    pr.renewal_requested_at = now
    record_event(
        EventType.RENEWAL_REQUESTED, pr, extra={"renewal": {"requested_at": isoformat(now)}}
    )
    enqueue("send_renewal_request", {"request_id": pr.id}, max_attempts=MAIL_ATTEMPTS)
    db.session.flush()
    return True


def merchant_contacts(merchant_id: str, support_email: str | None) -> list[str]:
    """Where the merchant hears of it: its support address, else its active owners."""
    if support_email:
        return [support_email]
    return list(
        db.session.scalars(
            select(MerchantUser.email)
            .where(
                MerchantUser.merchant_id == merchant_id,
                MerchantUser.role == "owner",
                MerchantUser.disabled_at.is_(None),
            )
            .order_by(MerchantUser.created_at)
        )
    )


@job_handler("send_renewal_request")
def send_renewal_request(payload: dict[str, Any]) -> None:
    pr = db.session.get(PaymentRequest, payload["request_id"])
    if pr is None:
        return
    merchant = pr.merchant
    url = f"{current_app.config['PORTAL_BASE_URL']}/merchant/requests/{pr.id}"
    locale = merchant.default_locale or "en"
    subject, text, html = render_mail(
        "renewal_request", locale, merchant=merchant, req=pr, pr=None, url=url
    )
    recipients = merchant_contacts(merchant.id, merchant.support_email)
    if not recipients:
        log.info("request %s: the merchant has no contact address", pr.id)
    for to in recipients:
        send_mail(to, subject, text, html)
