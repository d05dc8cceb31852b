"""The customer's emails about money: one receipt per applied payment, one notice per
refund. Sent by the worker after commit, in the customer's language."""

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
from portal.payments.methods import method_label
from portal.payments.models import Payment, Refund

log = logging.getLogger(__name__)


def _locale(payment: Payment) -> str:
    pr, merchant = payment.request, payment.request.merchant
    return payment.locale or pr.customer_locale or merchant.default_locale or "en"


def _send(payment: Payment, to: str, template: str, locale: str, **context: Any) -> None:
    """One of the payment's emails, in ``locale``, with its method in words."""
    pr = payment.request
    with force_locale(locale):
        context.update(method=method_label(payment), text_method=method_label(payment, "****"))
    send_merchant_mail(
        pr.merchant, to, template, locale, payment=payment, pr=pr,
        url=f"{link_url(pr.id)}/receipt/{payment.id}", **context,
    )  # fmt: skip


@job_handler("send_receipt")
def send_receipt(payload: dict[str, Any]) -> None:
    payment = db.session.get(Payment, payload["payment_id"])
    if payment is None or (payment.receipt_sent_at is not None and not payload.get("resend")):
        return
    if not payment.receipt_email:
        log.info("payment %s: no email address, no receipt email", payment.id)
        return
    pr, locale = payment.request, _locale(payment)
    with force_locale(locale):
        paid_at = format_datetime(payment.succeeded_at, "medium")
    refunded = payment.amount_refunded
    _send(
        payment,
        payment.receipt_email,
        "receipt",
        locale,
        amount=format_money(payment.amount, payment.currency, locale),
        refunded=format_money(refunded, payment.currency, locale) if refunded else None,
        still_due=format_money(pr.amount_due, pr.currency, locale) if pr.amount_due else None,
        paid_at=paid_at,
    )
    db.session.execute(
        update(Payment).where(Payment.id == payment.id).values(receipt_sent_at=utcnow())
    )


@job_handler("send_refund_notice")
def send_refund_notice(payload: dict[str, Any]) -> None:
    """What was refunded, to which method, and when it arrives; for an automatic refund,
    why the payment could not be used."""
    refund = db.session.get(Refund, payload["refund_id"])
    if refund is None or refund.notice_sent_at is not None:
        return
    payment = refund.payment
    if not payment.receipt_email:
        return
    locale = _locale(payment)
    _send(
        payment,
        payment.receipt_email,
        "refund",
        locale,
        refund=refund,
        amount=format_money(refund.amount, refund.currency, locale),
        paid=format_money(payment.amount, payment.currency, locale),
    )
    db.session.execute(update(Refund).where(Refund.id == refund.id).values(notice_sent_at=utcnow()))
