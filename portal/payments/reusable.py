"""Reusable top-up links: a parent request that is never paid itself, and one child per
payment made through its link (docs/api.md, "Reusable top-up links").

The parent holds the bounds and the customer; each pay form sent through its link makes
a child ``wallet_topup`` of the chosen amount, in the same transaction as the child's
attempt, and the child goes through the ordinary money path (its own
``payment.succeeded`` and ``payment_request.paid`` events, receipt and callbacks). The
form carries a nonce: the same form sent twice (a double click) finds the same child,
and so the same attempt; two tabs, two forms, two children. The parent's row is locked
while a child is made, so that a void of the parent and a new child never cross.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal.db_types import utcnow
from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.payments.services import PaymentRefused, decide_amount, lock_request, start_payment
from portal.states import PAYABLE, Kind, RequestStatus

# A child lives long enough for a checkout and a 3-D Secure step; then it expires as
# any request does (an attempt still open is closed first).
CHILD_LIFETIME = timedelta(hours=1)
# What a reusable parent stores as its expiry: it never expires (the API answers null).
NEVER = datetime(9999, 1, 1, tzinfo=UTC)  # (a day or a time zone away from the end of time)
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_nonce() -> str:
    """The pay form's nonce (one per page shown)."""
    return secrets.token_urlsafe(18)


def _child(parent: PaymentRequest, amount: int, nonce: str) -> PaymentRequest:
    now = utcnow()
    child = PaymentRequest(
        merchant=parent.merchant, merchant_id=parent.merchant_id, kind=Kind.WALLET_TOPUP,
        status=RequestStatus.OPEN, currency=parent.currency, amount=amount,
        reference=parent.reference, description=parent.description,
        customer_name=parent.customer_name, customer_email=parent.customer_email,
        customer_phone=parent.customer_phone, customer_locale=parent.customer_locale,
        customer_reference=parent.customer_reference, metadata_=parent.metadata_dict,
        allow_partial=False, allow_full_payment=False, wallet_min=parent.wallet_min,
        wallet_max=parent.wallet_max, wallet_suggested=[], amount_paid=0, amount_refunded=0,
        open_count=0, created_by_key_id=parent.created_by_key_id, created_at=now,
        updated_at=now, expires_at=now + CHILD_LIFETIME, reusable=False,
        parent_request_id=parent.id, parent_nonce=nonce,
    )  # fmt: skip
    db.session.add(child)
    db.session.flush()
    return child


def _latest_payment(child: PaymentRequest) -> Payment | None:
    return db.session.scalars(
        select(Payment).where(Payment.request_id == child.id).order_by(Payment.created_at.desc())
    ).first()


def start_reusable_payment(
    parent: PaymentRequest,
    amount: int | None,
    nonce: str | None,
    *,
    locale: str | None = None,
    receipt_email: str | None = None,
) -> Payment:
    """The attempt for one pay form of a reusable link: on the form's child (made now, or
    the one this form already made). Raises :class:`PaymentRefused` ("not_payable" once
    the parent is void); the caller rolls back then. A form whose child is no longer
    payable (sent again after it was paid) gets that child's last attempt back: the
    caller shows its result."""
    parent = lock_request(parent.id)
    if not parent.reusable or parent.status != RequestStatus.OPEN:
        raise PaymentRefused("not_payable")
    charge = decide_amount(parent, amount)
    if not _NONCE.fullmatch(nonce or ""):
        nonce = new_nonce()  # no usable nonce: this form is one of its own
    child = db.session.scalars(
        select(PaymentRequest).where(
            PaymentRequest.parent_request_id == parent.id, PaymentRequest.parent_nonce == nonce
        )
    ).first()
    if child is not None and child.amount != charge:
        child = None  # the same page sent again with another amount: another payment
        nonce = new_nonce()
    if child is None:
        child = _child(parent, charge, str(nonce))
    elif child.status not in PAYABLE or child.is_expired():
        last = _latest_payment(child)
        if last is not None:
            return last
    return start_payment(child, charge, locale=locale, receipt_email=receipt_email)


def open_children(parent: PaymentRequest) -> list[PaymentRequest]:
    """The parent's children that may still be paid, locked (after the parent)."""
    return list(
        db.session.scalars(
            select(PaymentRequest)
            .where(
                PaymentRequest.parent_request_id == parent.id,
                PaymentRequest.status == RequestStatus.OPEN,
            )
            .order_by(PaymentRequest.created_at)
            .with_for_update(of=PaymentRequest)
        )
    )
