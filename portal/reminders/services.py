"""Scheduling reminders with a request, and sending the due ones (the periodic duty's
steps: :func:`portal.jobs.periodic.send_reminders` commits after each).

Exactly once per scheduled reminder, with any number of workers: a reminder leaves
``scheduled`` only through a conditional UPDATE (``WHERE status = 'scheduled'``) made
while its request's row is locked, and its deliveries, jobs and events are written in
that same transaction. A second worker waits on the lock, then updates no row and
writes nothing. Whether the request may still be reminded (not paid, void or expired;
reminders on; the customer not unsubscribed) is decided there too, at send time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update

from portal.db_types import utcnow
from portal.delivery.models import LinkDelivery
from portal.delivery.services import MAX_ATTEMPTS, mask
from portal.delivery.shortlinks import short_code
from portal.extensions import db, execute_count
from portal.jobs.queue import enqueue
from portal.ledger.services import record_event
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.reminders.models import Reminder
from portal.reminders.optouts import is_opted_out
from portal.reminders.schedule import next_allowed, reminder_moment
from portal.states import PAYABLE, EventType, LinkDeliveryStatus, ReminderStatus

log = logging.getLogger(__name__)

# A reminder that could not go within a day of its time (workers stopped) is not sent
# late: the next rule's reminder says it better.
LATE_AFTER = timedelta(days=1)


def quiet_hours(merchant: Merchant) -> tuple[int, int]:
    return merchant.quiet_start, merchant.quiet_end


def schedule_reminders(pr: PaymentRequest, now: datetime) -> list[Reminder]:
    """One row per rule of the merchant's schedule that falls between now and the link's
    expiry (added to the caller's transaction); none when the request asks for none, and
    none for a reusable top-up link or its children (nothing is owed on them)."""
    if not pr.reminders or pr.reusable or pr.parent_request_id is not None:
        return []
    merchant = pr.merchant
    rows = []
    for rule in dict.fromkeys(merchant.reminder_schedule or []):
        moment = reminder_moment(
            rule, pr.due_date, pr.expires_at, merchant.time_zone, quiet_hours(merchant)
        )
        if moment is None or moment <= now:
            continue
        rows.append(
            Reminder(request_id=pr.id, merchant_id=pr.merchant_id, key=rule, due_at=moment,
                     status=ReminderStatus.SCHEDULED, created_at=now)
        )  # fmt: skip
    db.session.add_all(rows)
    return rows


def reminders_for(request_id: str) -> list[Reminder]:
    return list(
        db.session.scalars(
            select(Reminder).where(Reminder.request_id == request_id).order_by(Reminder.due_at)
        )
    )


def due_reminders(now: datetime, limit: int = 200) -> list[tuple[str, str]]:
    """(reminder id, request id) of the scheduled reminders due at ``now``, oldest first."""
    rows = db.session.execute(
        select(Reminder.id, Reminder.request_id)
        .where(Reminder.status == ReminderStatus.SCHEDULED, Reminder.due_at <= now)
        .order_by(Reminder.due_at, Reminder.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


def _lock_request(request_id: str) -> PaymentRequest:
    return db.session.scalars(
        select(PaymentRequest)
        .where(PaymentRequest.id == request_id)
        .with_for_update(of=PaymentRequest)
        .execution_options(populate_existing=True)
    ).one()


def _why_not(pr: PaymentRequest, reminder: Reminder, now: datetime) -> str | None:
    """Why a due reminder must not go, or None."""
    if pr.status not in PAYABLE:
        return str(pr.status)
    if pr.is_expired(now):
        return "expired"
    if not pr.reminders:
        return "disabled"
    if now - reminder.due_at > LATE_AFTER:
        return "late"
    return None


def _destinations(pr: PaymentRequest) -> tuple[list[tuple[str, str]], str | None]:
    """The (channel, address) pairs to remind on, or none and why."""
    wanted = pr.merchant.reminder_channels or []
    known = [(c, a) for c, a in (("email", pr.customer_email), ("sms", pr.customer_phone))
             if a and c in wanted]  # fmt: skip
    if not known:
        return [], "no_contact"
    allowed = [(c, a) for c, a in known if not is_opted_out(pr.merchant_id, c, a)]
    return allowed, None if allowed else "unsubscribed"


def _claim(reminder_id: str, status: str, reason: str | None, now: datetime) -> bool:
    """Move the reminder out of ``scheduled``: True for the one transaction that does."""
    claimed = execute_count(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == ReminderStatus.SCHEDULED)
        .values(status=status, reason=reason, done_at=now)
        .execution_options(synchronize_session=False)
    )
    return claimed == 1


def send_reminder(reminder_id: str, request_id: str, now: datetime | None = None) -> str | None:
    """Decide one due reminder in the caller's transaction: postponed past quiet hours,
    skipped (with why), or sent (a delivery and its job per channel, and a
    ``payment_request.reminder_sent`` event each). Returns what happened, None when
    another worker had already decided it."""
    now = now or utcnow()
    pr = _lock_request(request_id)
    reminder = db.session.get(Reminder, reminder_id, populate_existing=True)
    if reminder is None or reminder.status != ReminderStatus.SCHEDULED or reminder.due_at > now:
        return None
    merchant = pr.merchant
    allowed = next_allowed(now, merchant.time_zone, quiet_hours(merchant))
    reason = _why_not(pr, reminder, now)
    if reason is None and allowed > now:
        execute_count(
            update(Reminder)
            .where(Reminder.id == reminder_id, Reminder.status == ReminderStatus.SCHEDULED)
            .values(due_at=allowed)
            .execution_options(synchronize_session=False)
        )
        return "postponed"
    destinations: list[tuple[str, str]] = []
    if reason is None:
        destinations, reason = _destinations(pr)
    status = ReminderStatus.SENT if destinations else ReminderStatus.SKIPPED
    if not _claim(reminder_id, status, reason, now):
        return None
    for channel, address in destinations:
        _queue(pr, reminder, channel, address)
    return str(status) if reason is None else f"skipped: {reason}"


def _queue(pr: PaymentRequest, reminder: Reminder, channel: str, address: str) -> None:
    delivery = LinkDelivery(
        request_id=pr.id, merchant_id=pr.merchant_id, channel=channel,
        destination=mask(channel, address), reminder_id=reminder.id,
        locale=pr.customer_locale or pr.merchant.default_locale or "en",
        status=LinkDeliveryStatus.QUEUED, attempts=0,
    )  # fmt: skip
    db.session.add(delivery)
    db.session.flush()
    if channel == "sms":
        short_code(pr.id)  # made here: the SMS never carries a code a rollback undid
    enqueue("send_link", {"delivery_id": delivery.id, "to": address},
            max_attempts=MAX_ATTEMPTS + 1)  # fmt: skip
    record_event(
        EventType.REQUEST_REMINDER_SENT, pr,
        extra={"reminder": {"id": reminder.id, "key": reminder.key, "channel": channel,
                            "delivery_id": delivery.id}},
    )  # fmt: skip
