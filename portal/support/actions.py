"""The console's actions and their audit log.

Every action calls the same service the API uses and writes its audit entry
in the same transaction.
"""

from __future__ import annotations

from typing import Any

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
    user: StaffUser, pr: PaymentRequest, action: str, reason: str, target: str = ""
) -> None:
    """Run one console action and write its audit entry in the same transaction."""
    if action not in ACTIONS:
        raise ActionRefused("unknown action")
    if action in ADMIN_ACTIONS and not user.is_admin:
        raise ActionRefused("admins only")
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ActionRefused("a reason is required")
    merchant = db.session.get_one(Merchant, pr.merchant_id)
    details: dict[str, Any] = {}
    try:
        if action == "resend_link":
            delivery = send_link(pr, target or "email")
            details = {"delivery_id": delivery.id, "channel": delivery.channel}
        elif action == "resend_receipt":
            payment = _payment_of(pr, target)
            if payment.succeeded_at is None:
                raise ActionRefused("only succeeded payments have a receipt")
            enqueue(
                "send_receipt",
                {"payment_id": payment.id, "resend": True},
                max_attempts=MAIL_ATTEMPTS,
            )
            details = {"payment_id": payment.id}
        elif action == "redeliver_callback":
            deliveries = redeliver_event(pr.merchant_id, target)
            details = {"event_id": target, "deliveries": [d.id for d in deliveries]}
        elif action == "void":
            void_request(merchant, pr.id)
        elif action == "refund":
            refund = refund_payment(
                merchant, _payment_of(pr, target).id, None, reason, RefundSource.SUPPORT
            )
            details = {"refund_id": refund.id, "amount": refund.amount}
    except ApiError as exc:
        db.session.rollback()
        raise ActionRefused(exc.message) from None
    db.session.add(
        AuditLog(
            staff_id=user.id,
            staff_email=user.email,
            action=action,
            merchant_id=pr.merchant_id,
            target_id=target or pr.id,
            reason=reason[:500],
            details={"request_id": pr.id, **details},
        )
    )
    db.session.flush()


def _payment_of(pr: PaymentRequest, payment_id: str) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.request_id != pr.id:
        raise ActionRefused("no such payment on this request")
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
