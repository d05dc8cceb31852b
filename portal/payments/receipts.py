"""The receipt email: one per succeeded payment, sent by the worker after commit."""

from __future__ import annotations

import logging
from typing import Any

from flask_babel import force_locale, format_datetime
from sqlalchemy import update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.queue import job_handler
from portal.links import link_url
from portal.money import format_money
from portal.notifications.mail import send_merchant_mail
from portal.payments.models import Payment

log = logging.getLogger(__name__)


@job_handler("send_receipt")
def send_receipt(payload: dict[str, Any]) -> None:
    payment = db.session.get(Payment, payload["payment_id"])
    if payment is None or (payment.receipt_sent_at is not None and not payload.get("resend")):
        return
    if not payment.receipt_email:
        log.info("payment %s: no email address, no receipt email", payment.id)
        return
    pr, merchant = payment.request, payment.request.merchant
    locale = payment.locale or pr.customer_locale or merchant.default_locale or "en"
    with force_locale(locale):
        paid_at = format_datetime(payment.succeeded_at, "medium")
    send_merchant_mail(
        merchant,
        payment.receipt_email,
        "receipt",
        locale,
        payment=payment,
        pr=pr,
        amount=format_money(payment.amount, payment.currency, locale),
        still_due=format_money(pr.amount_due, pr.currency, locale) if pr.amount_due else None,
        paid_at=paid_at,
        url=f"{link_url(pr.id)}/receipt/{payment.id}",
    )
    db.session.execute(
        update(Payment).where(Payment.id == payment.id).values(receipt_sent_at=utcnow())
    )
    db.session.commit()
