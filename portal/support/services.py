"""The support console's rules: accounts, sessions, scope, search, timeline, actions.

Every action calls the same service the API uses and writes its audit entry
in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import phonenumbers
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select

from portal.db_types import utcnow
from portal.delivery.models import LinkDelivery
from portal.delivery.services import send_link
from portal.errors import ApiError
from portal.extensions import db
from portal.jobs.queue import MAIL_ATTEMPTS, enqueue
from portal.ledger.callbacks import redeliver_event
from portal.ledger.models import CallbackAttempt, CallbackDelivery, Event
from portal.merchants.models import ApiKey, Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import void_request
from portal.payments.models import Payment, Refund
from portal.payments.refunds import refund_payment
from portal.states import OPEN_ATTEMPT, CallbackStatus, PaymentStatus, RefundSource
from portal.support.models import AuditLog, StaffSession, StaffUser

HASHER = PasswordHasher()
# Verified against when the email is unknown, so both paths cost the same.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
ROLES = ("support", "admin")
ADMIN_ACTIONS = {"void", "refund"}
ACTIONS = ("resend_link", "resend_receipt", "redeliver_callback", "void", "refund")


class LoginFailed(Exception):
    """One message for every failure: never says whether the account exists."""


class StaffError(ValueError):
    """Invalid staff settings (CLI input)."""


def create_staff(
    email: str, role: str, merchant_ids: list[str] | None = None, password: str | None = None
) -> tuple[StaffUser, str]:
    """A new staff account (caller commits). Admins always get a TOTP secret."""
    email = email.strip().lower()
    if role not in ROLES:
        raise StaffError("role must be support or admin")
    if "@" not in email:
        raise StaffError("a staff email address is needed")
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise StaffError(f"{email} already exists")
    for merchant_id in merchant_ids or []:
        if db.session.get(Merchant, merchant_id) is None:
            raise StaffError(f"no merchant {merchant_id}")
    password = password or secrets.token_urlsafe(12)
    if len(password) < 12:
        raise StaffError("passwords have at least 12 characters")
    user = StaffUser(
        email=email,
        password_hash=HASHER.hash(password),
        role=role,
        merchant_ids=list(merchant_ids or []),
        totp_secret=pyotp.random_base32() if role == "admin" else None,
        failed_logins=0,
    )
    db.session.add(user)
    db.session.flush()
    return user, password


def enable_totp(user: StaffUser) -> str:
    user.totp_secret = pyotp.random_base32()
    return user.totp_secret


def totp_uri(user: StaffUser) -> str | None:
    if not user.totp_secret:
        return None
    return pyotp.TOTP(user.totp_secret).provisioning_uri(
        name=user.email, issuer_name="Payment portal"
    )


def authenticate(email: str, password: str, code: str | None) -> StaffUser:
    """The user, or :class:`LoginFailed` (commits failure counters)."""
    user = db.session.scalars(
        select(StaffUser).where(StaffUser.email == (email or "").strip().lower())
    ).first()
    now = utcnow()
    try:
        HASHER.verify(user.password_hash if user else _DUMMY_HASH, password or "")
        password_ok = user is not None
    except (VerificationError, InvalidHashError):
        password_ok = False
    if user is None:
        raise LoginFailed
    if user.locked_until and user.locked_until > now:
        raise LoginFailed
    code_ok = True
    if user.totp_secret or user.is_admin:
        code_ok = bool(
            user.totp_secret and code and pyotp.TOTP(user.totp_secret).verify(code, valid_window=1)
        )
    if not (password_ok and code_ok):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        db.session.flush()
        raise LoginFailed
    user.failed_logins = 0
    user.locked_until = None
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    db.session.flush()
    return user


def start_session(user: StaffUser) -> str:
    """A brand-new session id at every login (never reuse one from before)."""
    session = StaffSession(id=secrets.token_urlsafe(32), user_id=user.id)
    db.session.add(session)
    db.session.flush()
    return session.id


def load_session(session_id: str | None) -> StaffSession | None:
    """The live session, touched; expired ones (idle 30 min, 12 h in all) are deleted."""
    if not session_id:
        return None
    session = db.session.get(StaffSession, session_id)
    if session is None:
        return None
    now = utcnow()
    if now - session.last_seen_at > IDLE_TIMEOUT or now - session.created_at > ABSOLUTE_TIMEOUT:
        db.session.delete(session)
        db.session.flush()
        return None
    if now - session.last_seen_at > timedelta(seconds=30):
        session.last_seen_at = now
        db.session.flush()
    return session


def end_session(session_id: str | None) -> None:
    if session_id:
        db.session.query(StaffSession).filter_by(id=session_id).delete()
        db.session.flush()


# --- scope and search ---------------------------------------------------------


def in_scope(user: StaffUser, merchant_id: str) -> bool:
    return not user.merchant_ids or merchant_id in user.merchant_ids


def _scoped(user: StaffUser, query: Any) -> Any:
    if user.merchant_ids:
        return query.where(PaymentRequest.merchant_id.in_(user.merchant_ids))
    return query


def get_request(user: StaffUser, request_id: str) -> PaymentRequest | None:
    pr = db.session.get(PaymentRequest, request_id)
    return pr if pr is not None and in_scope(user, pr.merchant_id) else None


@dataclass
class SearchQuery:
    text: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None


def _match(text: str) -> Any:
    """The condition for what was typed: an id, a provider id, an email, a phone, a reference
    or the start of a customer name — each an indexed lookup."""
    if text.startswith("pr_"):
        return PaymentRequest.id == text
    if text.startswith(("pay_", "pi_", "ch_", "sbx_")):
        ids = select(Payment.request_id).where(
            or_(
                Payment.id == text,
                Payment.provider_payment_id == text,
                Payment.provider_charge_id == text,
            )
        )
        return PaymentRequest.id.in_(ids)
    if "@" in text:
        return PaymentRequest.customer_email == text.lower()  # stored lower-cased
    digits = text.replace(" ", "").replace("-", "").replace(".", "")
    if digits.lstrip("+").isdigit() and len(digits) >= 8:
        try:
            number = phonenumbers.parse(digits, "BE")
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            e164 = digits
        return PaymentRequest.customer_phone == e164
    return or_(
        PaymentRequest.reference == text,
        PaymentRequest.customer_reference == text,
        PaymentRequest.order_reference == text,
        PaymentRequest.customer_name.like(f"{_escape(text)}%", escape="\\"),
    )


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(user: StaffUser, q: SearchQuery, limit: int = 50) -> list[PaymentRequest]:
    query = _scoped(user, select(PaymentRequest))
    if q.text.strip():
        query = query.where(_match(q.text.strip()))
    if q.status:
        query = query.where(PaymentRequest.status == q.status)
    if q.date_from:
        query = query.where(PaymentRequest.created_at >= _start(q.date_from))
    if q.date_to:
        query = query.where(PaymentRequest.created_at < _start(q.date_to + timedelta(days=1)))
    return list(db.session.scalars(query.order_by(PaymentRequest.created_at.desc()).limit(limit)))


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


# --- the timeline -------------------------------------------------------------


@dataclass
class Entry:
    at: datetime | None
    kind: str
    title: str
    detail: str = ""
    raw: dict[str, Any] | None = None
    status: str = ""
    extra: list[Any] = field(default_factory=list)
    code: str = ""


def timeline(pr: PaymentRequest) -> list[Entry]:
    entries: list[Entry] = []
    key = db.session.get(ApiKey, pr.created_by_key_id) if pr.created_by_key_id else None
    entries.append(
        Entry(pr.created_at, "created", "created",
              f"API key {key.prefix}… ({key.label or key.id})" if key else "")
    )  # fmt: skip
    for d in db.session.scalars(select(LinkDelivery).where(LinkDelivery.request_id == pr.id)):
        entries.append(
            Entry(d.sent_at or d.created_at, "sent", d.channel, d.destination,
                  status=d.status, code=d.error or "")
        )  # fmt: skip
    if pr.first_opened_at:
        entries.append(
            Entry(pr.first_opened_at, "opened", str(pr.open_count), "", extra=[pr.last_opened_at])
        )
    payments = db.session.scalars(
        select(Payment).where(Payment.request_id == pr.id).order_by(Payment.created_at)
    ).all()
    for p in payments:
        method = f"{p.card_brand or p.method_type or ''} {p.card_last4 or ''}".strip()
        entries.append(
            Entry(p.created_at, "payment", p.id,
                  f"{p.provider} {p.provider_payment_id or ''} {method}".strip(),
                  status=p.status, code=p.failure_code or "",
                  extra=[p.amount, p.currency, p.flagged_reason if p.flagged else ""])
        )  # fmt: skip
        if p.succeeded_at:
            entries.append(Entry(p.succeeded_at, "succeeded", p.id, p.receipt_number or ""))
            entries.append(
                Entry(p.receipt_sent_at or p.succeeded_at, "receipt", p.receipt_email or "",
                      status="sent" if p.receipt_sent_at else
                      ("queued" if p.receipt_email else "no address"))
            )  # fmt: skip
        if p.succeeded_at and not p.applied:
            # Money the portal could not apply: refunded automatically (or about to be).
            entries.append(Entry(p.succeeded_at, "unapplied", p.id, p.refund_due or ""))
        for r in db.session.scalars(select(Refund).where(Refund.payment_id == p.id)):
            detail = f"{r.source}: {r.reason}" if r.reason else str(r.source)
            entries.append(
                Entry(r.created_at, "refund", r.id, detail, extra=[r.amount, r.currency])
            )
    events = db.session.scalars(
        select(Event).where(Event.request_id == pr.id).order_by(Event.seq)
    ).all()
    for event in events:
        deliveries = db.session.scalars(
            select(CallbackDelivery).where(CallbackDelivery.event_id == event.id)
        ).all()
        attempts: list[tuple[CallbackDelivery, CallbackAttempt]] = []
        for delivery in deliveries:
            attempts.extend(
                (delivery, a)
                for a in db.session.scalars(
                    select(CallbackAttempt)
                    .where(CallbackAttempt.delivery_id == delivery.id)
                    .order_by(CallbackAttempt.id)
                )
            )
        entries.append(
            Entry(event.created_at, "event", event.type, event.id,
                  raw={"id": event.id, "type": event.type, "sequence": event.seq,
                       "data": event.data},
                  status=", ".join(sorted({d.status for d in deliveries})), extra=attempts)
        )  # fmt: skip
    if pr.voided_at:
        entries.append(Entry(pr.voided_at, "voided", "voided"))
    entries.sort(key=lambda e: (e.at is None, e.at))
    return entries


# --- actions ------------------------------------------------------------------


class ActionRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _resend_link(pr: PaymentRequest, merchant: Merchant, target: str, reason: str) -> dict:
    delivery = send_link(pr, target or "email")
    return {"delivery_id": delivery.id, "channel": delivery.channel}


def _resend_receipt(pr: PaymentRequest, merchant: Merchant, target: str, reason: str) -> dict:
    payment = _payment_of(pr, target)
    if payment.succeeded_at is None:
        raise ActionRefused("only succeeded payments have a receipt")
    enqueue("send_receipt", {"payment_id": payment.id, "resend": True}, max_attempts=MAIL_ATTEMPTS)
    return {"payment_id": payment.id}


def _redeliver(pr: PaymentRequest, merchant: Merchant, target: str, reason: str) -> dict:
    deliveries = redeliver_event(pr.merchant_id, target)
    return {"event_id": target, "deliveries": [d.id for d in deliveries]}


def _void(pr: PaymentRequest, merchant: Merchant, target: str, reason: str) -> dict:
    void_request(merchant, pr.id)
    return {}


def _refund(pr: PaymentRequest, merchant: Merchant, target: str, reason: str) -> dict:
    payment_id = _payment_of(pr, target).id
    refund = refund_payment(merchant, payment_id, None, reason, RefundSource.SUPPORT)
    return {"refund_id": refund.id, "amount": refund.amount}


_HANDLERS: dict[str, Callable[[PaymentRequest, Merchant, str, str], dict]] = {
    "resend_link": _resend_link,
    "resend_receipt": _resend_receipt,
    "redeliver_callback": _redeliver,
    "void": _void,
    "refund": _refund,
}


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
    try:
        details = _HANDLERS[action](pr, merchant, target, reason)
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


# --- dashboard ----------------------------------------------------------------


@dataclass
class Stats:
    created: int
    opened: int
    paid: int
    failed_payments: int
    collected: dict[str, Collected]


@dataclass
class Collected:
    """Money applied to requests in a period, and refunded in it; net is what stays."""

    gross: int
    refunded: int

    @property
    def net(self) -> int:
        return self.gross - self.refunded


def stats(user: StaffUser, since: datetime) -> Stats:
    base = _scoped(user, select(func.count(PaymentRequest.id))).where(
        PaymentRequest.created_at >= since
    )
    created = db.session.scalar(base) or 0
    opened = db.session.scalar(base.where(PaymentRequest.first_opened_at.is_not(None))) or 0
    paid_q = _scoped(user, select(func.count(PaymentRequest.id))).where(
        PaymentRequest.paid_at >= since
    )
    paid = db.session.scalar(paid_q) or 0
    payments = select(Payment).where(Payment.created_at >= since)
    if user.merchant_ids:
        payments = payments.where(Payment.merchant_id.in_(user.merchant_ids))
    failed = db.session.scalar(
        select(func.count()).select_from(
            payments.where(Payment.status == PaymentStatus.FAILED).subquery()
        )
    )
    collected_rows = db.session.execute(
        select(Payment.currency, func.sum(Payment.amount))
        .where(Payment.succeeded_at >= since, Payment.applied.is_(True), *_payment_scope(user))
        .group_by(Payment.currency)
    ).all()
    refunded_rows = db.session.execute(
        select(Refund.currency, func.sum(Refund.amount))
        .join(Payment, Payment.id == Refund.payment_id)
        .where(Refund.created_at >= since, Payment.applied.is_(True), *_payment_scope(user))
        .group_by(Refund.currency)
    ).all()
    refunded = {c: int(total) for c, total in refunded_rows}
    collected = {c: int(total) for c, total in collected_rows}
    money = {
        c: Collected(collected.get(c, 0), refunded.get(c, 0))
        for c in sorted(set(collected) | set(refunded))
    }
    return Stats(created, opened, paid, failed or 0, money)


def _payment_scope(user: StaffUser) -> list[Any]:
    return [Payment.merchant_id.in_(user.merchant_ids)] if user.merchant_ids else []


def daily_paid(user: StaffUser, days: int = 30) -> list[tuple[date, int]]:
    """Payments succeeded per day, oldest first (for the chart)."""
    since = utcnow() - timedelta(days=days - 1)
    rows = db.session.scalars(
        select(Payment.succeeded_at).where(Payment.succeeded_at >= since, *_payment_scope(user))
    ).all()
    counts: dict[date, int] = {}
    for at in rows:
        if at is not None:
            counts[at.date()] = counts.get(at.date(), 0) + 1
    start = since.date()
    days_list = [start + timedelta(days=i) for i in range(days)]
    return [(day, counts.get(day, 0)) for day in days_list]


def callbacks_per_merchant(user: StaffUser) -> list[tuple[str, int, int]]:
    """(merchant name, pending deliveries that failed at least once, dead-lettered)."""
    query = (
        select(
            Merchant.name,
            func.sum(
                db.case(
                    (
                        (CallbackDelivery.status == CallbackStatus.PENDING)
                        & (CallbackDelivery.attempts > 0),
                        1,
                    ),
                    else_=0,
                )
            ),
            func.sum(db.case((CallbackDelivery.status == CallbackStatus.DEAD, 1), else_=0)),
        )
        .join(Merchant, Merchant.id == CallbackDelivery.merchant_id)
        .group_by(Merchant.name)
    )
    if user.merchant_ids:
        query = query.where(CallbackDelivery.merchant_id.in_(user.merchant_ids))
    return [(name, int(f or 0), int(d or 0)) for name, f, d in db.session.execute(query)]


def needs_attention(user: StaffUser) -> list[tuple[str, str, str]]:
    """(kind, request id, what) for dead callbacks, stuck and flagged payments."""
    items: list[tuple[str, str, str]] = []
    dead = (
        select(CallbackDelivery, Event)
        .join(Event, Event.id == CallbackDelivery.event_id)
        .where(CallbackDelivery.status == CallbackStatus.DEAD)
    )
    if user.merchant_ids:
        dead = dead.where(CallbackDelivery.merchant_id.in_(user.merchant_ids))
    for _delivery, event in db.session.execute(dead.limit(50)):
        items.append(("dead_callback", event.request_id or "", f"{event.type} {event.id}"))
    stuck_before = utcnow() - timedelta(hours=1)
    payments = select(Payment).where(
        or_(
            Payment.flagged.is_(True),
            Payment.status.in_(OPEN_ATTEMPT)
            & (Payment.updated_at < stuck_before)
            & (Payment.provider != "sandbox"),
        ),
        *_payment_scope(user),
    )
    for p in db.session.scalars(payments.limit(50)):
        kind = "flagged" if p.flagged else "stuck_payment"
        items.append((kind, p.request_id, p.flagged_reason or f"{p.id} {p.status}"))
    return items
