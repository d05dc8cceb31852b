"""The customer's emails about money: one receipt per applied payment, one notice per
refund. Sent by the worker after commit, in the customer's language."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import update

from portal.dates import formatting_locale, local_moment
from portal.db_types import utcnow
from portal.documents import group_receipt_pdf, pdf_name, receipt_pdf
from portal.extensions import db
from portal.jobs.queue import job_handler
from portal.links import account_token, link_url
from portal.merchants.models import Merchant
from portal.money import format_money
from portal.notifications.mail import Attachment, send_merchant_mail
from portal.payments.groups import paid_lines
from portal.payments.methods import method_label
from portal.payments.models import Payment, PaymentGroup, Refund

log = logging.getLogger(__name__)


def _locale(payment: Payment) -> str:
    pr, merchant = payment.request, payment.request.merchant
    return payment.locale or pr.customer_locale or merchant.default_locale or "en"


def _send(
    payment: Payment, to: str, template: str, locale: str,
    attachments: Sequence[Attachment] = (), **context: Any,
) -> None:  # fmt: skip
    """One of the payment's emails, in ``locale``, with its method in words."""
    pr = payment.request
    with force_locale(locale):
        context.update(method=method_label(payment), text_method=method_label(payment, "****"))
    send_merchant_mail(
        pr.merchant, to, template, locale, attachments, payment=payment,
        pr=pr, url=f"{link_url(pr.id)}/receipt/{payment.id}", **context,
    )  # fmt: skip


def _receipt_attachment(payment: Payment, locale: str) -> list[Attachment]:
    """The receipt as a PDF; a receipt email still goes without it should drawing fail."""
    try:
        body = receipt_pdf(payment, locale)
    except Exception:  # a missing system library must not cost the customer the receipt
        log.exception("payment %s: the receipt PDF could not be drawn", payment.id)
        return []
    return [(pdf_name("receipt", payment.receipt_number or payment.id), "application/pdf", body)]


@job_handler("send_receipt")
def send_receipt(payload: dict[str, Any]) -> None:
    payment = db.session.get(Payment, payload["payment_id"])
    if payment is None or (payment.receipt_sent_at is not None and not payload.get("resend")):
        return
    if not payment.receipt_email:
        log.info("payment %s: no email address, no receipt email", payment.id)
        return
    pr, locale = payment.request, _locale(payment)
    merchant = pr.merchant
    dates = formatting_locale(locale, merchant.country)
    paid_at = local_moment(payment.succeeded_at or utcnow(), dates, merchant.time_zone)
    refunded = payment.amount_refunded
    _send(
        payment,
        payment.receipt_email,
        "receipt",
        locale,
        _receipt_attachment(payment, locale),
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


@job_handler("send_group_receipt")
def send_group_receipt(payload: dict[str, Any]) -> None:
    """One receipt for an account-page payment: each request and line it settled."""
    group = db.session.get(PaymentGroup, payload["group_id"])
    if group is None or group.receipt_sent_at is not None or not group.receipt_email:
        return
    merchant = db.session.get_one(Merchant, group.merchant_id)
    locale = group.locale or merchant.default_locale or "en"
    lines = paid_lines(group.members)
    members = [
        {
            "request": m.request,
            "share": format_money(m.amount, m.currency, locale),
            "receipt_number": m.receipt_number,
            "lines": [(ln, format_money(a, m.currency, locale)) for ln, a in lines[m.id]],
        }
        for m in group.members
        if m.applied
    ]
    dates = formatting_locale(locale, merchant.country)
    token = account_token(merchant.id, group.customer_reference)
    try:
        body = group_receipt_pdf(group, lines, locale)
        attachments = [(pdf_name("receipt", group.id), "application/pdf", body)]
    except Exception:  # a missing system library must not cost the customer the receipt
        log.exception("group %s: the receipt PDF could not be drawn", group.id)
        attachments = []
    send_merchant_mail(
        merchant, group.receipt_email, "group_receipt", locale, attachments,
        amount=format_money(group.amount, group.currency, locale), members=members,
        pr=group.members[0].request,  # the greeting's name
        paid_at=local_moment(group.succeeded_at or utcnow(), dates, merchant.time_zone),
        url=f"{current_app.config['PORTAL_BASE_URL']}/a/{token}/receipt/{group.id}",
    )  # fmt: skip
    db.session.execute(
        update(PaymentGroup).where(PaymentGroup.id == group.id).values(receipt_sent_at=utcnow())
    )
