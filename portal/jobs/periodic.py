"""The worker's periodic duties, each in a thread of its own beside the claim loop.

Expiring overdue links, sending due reminders (their messages go as jobs), asking the
payment provider about stuck payments, queuing the merchants' daily digests and
forgetting old finished jobs never run in the thread that claims jobs: a provider that
does not answer holds its own duty, never a callback, a receipt or a link (it used to
hold them all, for minutes). Every worker runs every duty, each safe on many workers at
once. The reconciliation has a time budget per run and a circuit breaker per provider
(:mod:`portal.providers.circuit`): an unreachable Stripe costs one probe per cool-down,
not a timeout per stuck payment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import delete, select
from sqlalchemy.exc import InterfaceError, OperationalError

from portal.db_types import utcnow
from portal.extensions import db, execute_count
from portal.jobs.models import Job
from portal.notices.services import digest_merchants, plan_digest
from portal.payment_requests.services import expire_overdue
from portal.payments.groups import mark_group_asked, refresh_group, stuck_groups
from portal.payments.models import Payment, PaymentGroup
from portal.payments.services import mark_asked, refresh_payment, stuck_payments
from portal.providers.base import ProviderError
from portal.providers.circuit import ProviderGuard
from portal.reminders.services import due_reminders, send_reminder
from portal.states import JobStatus

log = logging.getLogger(__name__)

EVERY = 60.0  # seconds between two runs of a duty
RECONCILE_BUDGET = 30.0  # seconds a reconciliation run may go on starting provider calls
KEEP_DONE = timedelta(days=7)
CLEANUP_BATCH = 5000  # finished jobs forgotten per statement
CLEANUP_BATCHES = 20  # statements per run (100,000 jobs a minute at most)
REMINDER_BATCH = 200  # due reminders read per statement
REMINDER_BATCHES = 25  # statements per run


def expire_links() -> None:

    expired = expire_overdue()
    db.session.commit()  # a periodic duty is its own boundary
    if expired:
        log.info("expired %s payment requests", expired)


def reconcile_payments(budget: float | None = None) -> None:
    """Ask the provider about stuck attempts, one transaction each (a slow provider holds
    no lock for longer than one of its answers). The guard (time budget and circuit
    breakers) is asked before each call and told how it went; an attempt it holds back
    waits, unasked, for the next run."""

    guard = ProviderGuard(RECONCILE_BUDGET if budget is None else budget)
    payments = ((p.id, p.provider) for p in stuck_payments())
    checked = _ask_each(
        guard, payments, lambda pid: refresh_payment(db.session.get_one(Payment, pid)), mark_asked
    )
    # The account page's groups, stuck the same way.
    groups = ((gid, db.session.get_one(PaymentGroup, gid).provider) for gid in stuck_groups())
    checked += _ask_each(guard, groups, refresh_group, mark_group_asked)
    if checked:
        log.info("asked the provider about %s stuck payment(s)", checked)
    if guard.skipped:
        log.info("%s stuck payment(s) wait for the next run (budget or circuit)", guard.skipped)


def _ask_each(
    guard: ProviderGuard,
    stuck: Iterable[tuple[str, str]],
    refresh: Callable[[str], object],
    mark: Callable[[str], None],
) -> int:
    """Ask the provider about each stuck (id, provider) the guard lets through, one
    transaction each; the number asked."""
    checked = 0
    for item_id, provider in stuck:
        if not guard.allow(provider):
            continue
        try:
            refresh(item_id)
        except ProviderError as exc:
            db.session.rollback()
            log.warning("reconciling %s failed: %s", item_id, exc)
            guard.failed(provider, exc)
        else:
            guard.succeeded(provider)
        mark(item_id)
        db.session.commit()
        checked += 1
    return checked


def send_reminders() -> None:
    send_due_reminders()


def send_due_reminders(now: datetime | None = None) -> int:
    """Every due reminder, one transaction each (its request locked, its outcome, its
    deliveries, jobs and events together: :func:`portal.reminders.services.send_reminder`).
    Safe on many workers at once: a reminder another worker decided is left alone.
    Returns how many this run decided (sent, skipped or postponed)."""
    now = now or utcnow()
    decided = 0
    for _ in range(REMINDER_BATCHES):
        due = due_reminders(now, REMINDER_BATCH)
        db.session.rollback()  # the read's transaction: each reminder has its own
        for reminder_id, request_id in due:
            try:
                outcome = send_reminder(reminder_id, request_id, now)
                db.session.commit()
            except (OperationalError, InterfaceError):
                raise
            except Exception:
                db.session.rollback()
                log.exception("reminder %s failed; tried again next run", reminder_id)
                continue
            decided += outcome is not None
        if len(due) < REMINDER_BATCH:
            break
    if decided:
        log.info("decided %s due reminder(s)", decided)
    return decided


def forget_finished_jobs() -> None:
    cutoff = utcnow() - KEEP_DONE
    # In batches: a week's backlog in one statement could outlast the statement timeout.
    old = (
        select(Job.id)
        .where(Job.status == JobStatus.DONE, Job.finished_at < cutoff)
        .limit(CLEANUP_BATCH)
        .scalar_subquery()
    )
    for _ in range(CLEANUP_BATCHES):
        deleted = execute_count(delete(Job).where(Job.id.in_(old)))
        db.session.commit()
        if deleted < CLEANUP_BATCH:
            break


def daily_digests(now: datetime | None = None) -> int:
    """Queue the daily digests due (each merchant's own morning), one transaction per
    merchant; returns how many were queued."""
    now = now or utcnow()
    queued = 0
    for merchant_id in digest_merchants():
        queued += plan_digest(merchant_id, now)
        db.session.commit()  # a periodic duty is its own boundary
    if queued:
        log.info("queued %s daily digest(s)", queued)
    return queued


@dataclass(frozen=True)
class Duty:
    name: str
    run: Callable[[], object]


DUTIES = (
    Duty("expire-links", expire_links),
    Duty("reconcile-payments", reconcile_payments),
    Duty("send-reminders", send_reminders),
    Duty("forget-finished-jobs", forget_finished_jobs),
    Duty("daily-digests", daily_digests),
)


def run_periodic() -> None:
    """Every duty once, one after the other, in this thread (tests, one-off runs)."""
    for duty in DUTIES:
        duty.run()


def start_duties(app: Flask, stopping: threading.Event) -> list[threading.Thread]:
    """One daemon thread per duty, each running it every :data:`EVERY` seconds until
    ``stopping`` is set (daemon: a duty waiting on a provider never holds up an exit)."""
    threads = [
        threading.Thread(
            target=_every, args=(app, duty, stopping), name=f"duty-{duty.name}", daemon=True
        )
        for duty in DUTIES
    ]
    for thread in threads:
        thread.start()
    return threads


def _every(app: Flask, duty: Duty, stopping: threading.Event) -> None:
    while not stopping.is_set():
        with app.app_context():
            try:
                duty.run()
            except (OperationalError, InterfaceError) as exc:
                log.warning("%s: database unavailable (%s); next run in %.0fs",
                            duty.name, type(exc).__name__, EVERY)  # fmt: skip
            except Exception:
                log.exception("%s failed; next run in %.0fs", duty.name, EVERY)
            finally:
                db.session.remove()
        stopping.wait(EVERY)
