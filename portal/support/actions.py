"""The console's actions and their audit log.

Every action calls the same service the API uses and writes its audit entry
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal.delivery.services import send_link
from portal.errors import ApiError
from portal.extensions import db
from portal.jobs.queue import MAIL_ATTEMPTS, enqueue
from portal.ledger.callbacks import redeliver_event
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import void_request
from portal.payments.models import Payment
from portal.payments.refunds import refund_payment
from portal.states import RefundSource
from portal.support.models import AuditLog, StaffUser

ADMIN_ACTIONS = {"void", "refund"}
ACTIONS = ("resend_link", "resend_receipt", "redeliver_callback", "void", "refund")


class ActionRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def perform(
    user: StaffUser,
    pr: PaymentRequest,
    action: str,
    reason: str,
    target: str = "",
    email: str = "",
) -> None:
    """Run one console action and write its audit entry in the same transaction.
    ``email``: for "resend receipt", the address the customer gives when the payment
    has none (kept on the payment)."""
    if action not in ACTIONS:
        raise ActionRefused(_l("Unknown action."))
    if action in ADMIN_ACTIONS and not user.is_admin:
        raise ActionRefused(_l("Only admins may do this."))
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ActionRefused(_l("A reason is required."))
    try:
        details = _RUNNERS[action](pr, target, reason, email.strip())
    except ApiError as exc:
        db.session.rollback()
        raise ActionRefused(exc.message) from None
    db.session.add(
        AuditLog(
            staff_id=user.id,
            staff_email=user.email,
            action=action,
            merchant_id=pr.merchant_id,
            # What the action acted on: the request (a link resent by email or SMS, a
            # void), the payment (receipt, refund) or the event (callback).
            target_id=pr.id if action in REQUEST_ACTIONS else (target or pr.id),
            reason=reason[:500],
            details={"request_id": pr.id, **details},
        )
    )
    db.session.flush()


REQUEST_ACTIONS = {"resend_link", "void"}


def _resend_link(pr: PaymentRequest, target: str, reason: str, email: str) -> dict[str, Any]:
    delivery = send_link(pr, target or "email")
    return {"delivery_id": delivery.id, "channel": delivery.channel}


def needs_receipt_address(pr: PaymentRequest, payment_id: str) -> bool:
    """Whether "resend receipt" must ask for an address: the payment has none."""
    payment = db.session.get(Payment, payment_id) if payment_id else None
    return payment is not None and payment.request_id == pr.id and not payment.receipt_email


def _resend_receipt(pr: PaymentRequest, target: str, reason: str, email: str) -> dict[str, Any]:
    payment = _payment_of(pr, target)
    if payment.succeeded_at is None:
        raise ActionRefused(_l("Only succeeded payments have a receipt."))
    details: dict[str, Any] = {"payment_id": payment.id}
    if not payment.receipt_email:
        if not email:
            raise ActionRefused(
                _l("This payment has no e-mail address: enter the one the customer gives you.")
            )
        try:
            payment.receipt_email = validate_email(
                email, check_deliverability=False
            ).normalized.lower()
        except EmailNotValidError:
            raise ActionRefused(_l("This e-mail address is not valid.")) from None
        details["address_added"] = True
    enqueue("send_receipt", {"payment_id": payment.id, "resend": True}, max_attempts=MAIL_ATTEMPTS)
    return details


def _redeliver_callback(pr: PaymentRequest, target: str, reason: str, email: str) -> dict[str, Any]:
    deliveries = redeliver_event(pr.merchant_id, target)
    return {"event_id": target, "deliveries": [d.id for d in deliveries]}


def _void(pr: PaymentRequest, target: str, reason: str, email: str) -> dict[str, Any]:
    void_request(db.session.get_one(Merchant, pr.merchant_id), pr.id)
    return {}


def _refund(pr: PaymentRequest, target: str, reason: str, email: str) -> dict[str, Any]:
    merchant = db.session.get_one(Merchant, pr.merchant_id)
    refund = refund_payment(
        merchant, _payment_of(pr, target).id, None, reason, RefundSource.SUPPORT
    )
    return {"refund_id": refund.id, "amount": refund.amount}


_RUNNERS: dict[str, Callable[[PaymentRequest, str, str, str], dict[str, Any]]] = {
    "resend_link": _resend_link,
    "resend_receipt": _resend_receipt,
    "redeliver_callback": _redeliver_callback,
    "void": _void,
    "refund": _refund,
}


def _payment_of(pr: PaymentRequest, payment_id: str) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.request_id != pr.id:
        raise ActionRefused(_l("No such payment on this request."))
    return payment


def audit_entries(
    user: StaffUser, action: str = "", staff: str = "", target: str = "", limit: int = 200
) -> list[AuditLog]:
    """The audit entries the user may see: an admin scoped to merchants sees theirs only."""
    query = select(AuditLog)
    if user.merchant_ids:
        query = query.where(AuditLog.merchant_id.in_(user.merchant_ids))
    if action:
        query = query.where(AuditLog.action == action)
    if staff:
        query = query.where(AuditLog.staff_email == staff.lower())
    if target:
        query = query.where(AuditLog.target_id == target)
    return list(db.session.scalars(query.order_by(AuditLog.at.desc()).limit(limit)))
