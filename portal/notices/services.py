"""E-mails to the merchant about its own account, decided in the transaction of the
change (outbox) and sent by the ``send_merchant_notice`` job.

- **Endpoint disabled** (it answered 410 Gone): one e-mail at once; the delivery that
  met the 410 is in it.
- **Dead letters**: a delivery that ran out of retries on an endpoint still enabled
  joins the endpoint's waiting notice, sent an hour after the endpoint's previous
  dead-letter e-mail (at once when there was none): "3 deliveries failed". Deliveries
  closed because the endpoint was disabled or deleted tell nobody again.
- **Daily digest** (``merchants.daily_digest``): yesterday's payments and refunds, the
  day read on the merchant's clock, once per merchant and day (a unique index decides
  between workers), planned by the periodic duty ``daily-digests``.

Recipients: the merchant console's active owners; the shop's support address when it
has no owner yet. The language: the merchant's default locale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portal.dates import formatting_locale, local_day, zone
from portal.db_types import utcnow
from portal.extensions import db
from portal.ids import new_id
from portal.jobs.queue import MAIL_ATTEMPTS, enqueue, job_handler
from portal.ledger.models import CallbackEndpoint
from portal.merchant_console.models import MerchantUser
from portal.merchants.models import Merchant
from portal.money import format_money
from portal.notices.models import MerchantNotice
from portal.notifications.mail import render_mail, send_mail
from portal.payments.models import Payment, Refund
from portal.states import SETTLED

log = logging.getLogger(__name__)

DEAD_LETTER_SPACING = timedelta(hours=1)
# The digest of a day leaves from this hour of the next day (merchant's clock) on.
DIGEST_HOUR = 6
DIGEST_LINES = 50  # payments listed one by one; the totals count them all


def _queue(notice: MerchantNotice) -> None:
    enqueue("send_merchant_notice", {"notice_id": notice.id}, run_at=notice.send_at,
            max_attempts=MAIL_ATTEMPTS)  # fmt: skip


def endpoint_disabled(endpoint: CallbackEndpoint) -> MerchantNotice:
    """The endpoint was just disabled by the portal (410): tell the merchant now."""
    notice = MerchantNotice(
        merchant_id=endpoint.merchant_id, kind="endpoint_disabled", endpoint_id=endpoint.id,
        deliveries=1, send_at=utcnow(),
    )  # fmt: skip
    db.session.add(notice)
    db.session.flush()
    _queue(notice)
    return notice


def dead_lettered(endpoint: CallbackEndpoint) -> MerchantNotice | None:
    """A delivery to ``endpoint`` ran out of retries: it joins the endpoint's waiting
    notice, or starts one an hour after the previous. The endpoint's row is locked first,
    so two workers dead-lettering at once count into the same notice."""
    if not endpoint.enabled or endpoint.deleted_at is not None:
        return None
    db.session.execute(
        select(CallbackEndpoint.id).where(CallbackEndpoint.id == endpoint.id).with_for_update()
    )
    waiting = db.session.scalars(
        select(MerchantNotice).where(
            MerchantNotice.endpoint_id == endpoint.id,
            MerchantNotice.kind == "dead_letters",
            MerchantNotice.sent_at.is_(None),
        )
    ).first()
    if waiting is not None:
        waiting.deliveries = MerchantNotice.deliveries + 1
        db.session.flush()
        return waiting
    previous = db.session.scalar(
        select(func.max(MerchantNotice.send_at)).where(
            MerchantNotice.endpoint_id == endpoint.id, MerchantNotice.kind == "dead_letters"
        )
    )
    now = utcnow()
    send_at = max(now, previous + DEAD_LETTER_SPACING) if previous else now
    notice = MerchantNotice(merchant_id=endpoint.merchant_id, kind="dead_letters",
                            endpoint_id=endpoint.id, deliveries=1, send_at=send_at)  # fmt: skip
    db.session.add(notice)
    db.session.flush()
    _queue(notice)
    return notice


def recipients(merchant: Merchant) -> list[str]:
    owners = db.session.scalars(
        select(MerchantUser.email)
        .where(
            MerchantUser.merchant_id == merchant.id,
            MerchantUser.role == "owner",
            MerchantUser.password_hash.is_not(None),
            MerchantUser.disabled_at.is_(None),
        )
        .order_by(MerchantUser.created_at)
    ).all()
    if owners:
        return list(owners)
    return [merchant.support_email] if merchant.support_email else []


def console_url(path: str) -> str:
    return f"{current_app.config['PORTAL_BASE_URL']}/merchant{path}"


# --- the daily digest ---------------------------------------------------------------


def digest_day(merchant: Merchant, now: datetime) -> date | None:
    """The day whose digest is due at ``now`` (yesterday on the merchant's clock), or
    None before :data:`DIGEST_HOUR`."""
    local = now.astimezone(zone(merchant.time_zone))
    if local.hour < DIGEST_HOUR:
        return None
    return local.date() - timedelta(days=1)


def _insert_ignoring_duplicates(values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING: True when this transaction's row was written."""
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    written = db.session.scalar(
        insert(MerchantNotice).values(**values).on_conflict_do_nothing()
        .returning(MerchantNotice.id)
    )  # fmt: skip
    return written is not None


def digest_merchants() -> list[str]:
    """The merchants that want a daily digest."""
    return list(db.session.scalars(
        select(Merchant.id).where(Merchant.daily_digest.is_(True)).order_by(Merchant.id)
    ))  # fmt: skip


def plan_digest(merchant_id: str, now: datetime) -> bool:
    """Queue the merchant's digest due at ``now`` unless it already was (no commit; the
    periodic duty commits per merchant). Two workers at once: the unique index lets one
    row in, and only the transaction that wrote it queues the e-mail."""
    merchant = db.session.get_one(Merchant, merchant_id)
    day = digest_day(merchant, now)
    if day is None:
        return False
    values = {"id": new_id("mn"), "merchant_id": merchant_id, "kind": "digest", "day": day,
              "deliveries": 0, "send_at": now, "created_at": now}  # fmt: skip
    if not _insert_ignoring_duplicates(values):
        return False
    enqueue("send_merchant_notice", {"notice_id": values["id"]}, max_attempts=MAIL_ATTEMPTS)
    return True


def day_bounds(day: date, zone_name: str) -> tuple[datetime, datetime]:
    """The instants (UTC) a local day starts and ends at (23 or 25 hours around DST)."""
    tz = zone(zone_name)
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start, end


@dataclass
class Digest:
    payments: list[Payment]
    payment_count: int
    refund_count: int
    paid: dict[str, int]
    refunded: dict[str, int]

    @property
    def empty(self) -> bool:
        return not self.payment_count and not self.refund_count


def digest_of(merchant: Merchant, day: date) -> Digest:
    start, end = day_bounds(day, merchant.time_zone)
    payments = db.session.scalars(
        select(Payment)
        .where(
            Payment.merchant_id == merchant.id,
            Payment.status.in_(SETTLED),
            Payment.succeeded_at >= start,
            Payment.succeeded_at < end,
        )
        .order_by(Payment.succeeded_at, Payment.id)
    ).all()
    refunds = db.session.scalars(
        select(Refund).where(
            Refund.merchant_id == merchant.id, Refund.created_at >= start, Refund.created_at < end
        )
    ).all()
    paid: dict[str, int] = {}
    for payment in payments:
        paid[payment.currency] = paid.get(payment.currency, 0) + payment.amount
    refunded: dict[str, int] = {}
    for refund in refunds:
        refunded[refund.currency] = refunded.get(refund.currency, 0) + refund.amount
    return Digest(list(payments[:DIGEST_LINES]), len(payments), len(refunds), paid, refunded)


# --- the job --------------------------------------------------------------------------


def _totals(amounts: dict[str, int], locale: str) -> str:
    return ", ".join(format_money(v, c, locale) for c, v in sorted(amounts.items()))


def _trouble_context(notice: MerchantNotice, merchant: Merchant) -> dict[str, Any]:
    endpoint = db.session.get_one(CallbackEndpoint, notice.endpoint_id)
    return {"endpoint": endpoint, "count": notice.deliveries,
            "url": console_url("/settings#deliveries")}  # fmt: skip


def _digest_context(notice: MerchantNotice, merchant: Merchant) -> dict[str, Any] | None:
    assert notice.day is not None
    digest = digest_of(merchant, notice.day)
    if digest.empty:
        return None  # a quiet day: no e-mail (the row still marks the day as done)
    locale = merchant.default_locale or "en"
    lines = [(local_day(p.succeeded_at or p.created_at, "short", locale, merchant.time_zone),
              p.receipt_number or p.id, format_money(p.amount, p.currency, locale))
             for p in digest.payments]  # fmt: skip
    return {
        "digest": digest, "lines": lines, "paid": _totals(digest.paid, locale),
        "refunded": _totals(digest.refunded, locale), "more": digest.payment_count - len(lines),
        "day": local_day(notice.day, "full", formatting_locale(locale, merchant.country), None),
        "url": console_url("/payments"),
    }  # fmt: skip


@job_handler("send_merchant_notice")
def send_merchant_notice(payload: dict[str, Any]) -> None:
    """Send one notice; marking it sent closes a dead-letter batch (later ones start the
    next). A failed send rolls the mark back and the job retries."""
    notice = db.session.get(MerchantNotice, payload["notice_id"])
    if notice is None or notice.sent_at is not None:
        return
    notice.sent_at = utcnow()
    db.session.flush()
    merchant = db.session.get_one(Merchant, notice.merchant_id)
    if notice.kind == "digest":
        context = _digest_context(notice, merchant)
    else:
        context = _trouble_context(notice, merchant)
    to = recipients(merchant)
    if context is None or not to:
        return
    template = "merchant_digest" if notice.kind == "digest" else f"merchant_{notice.kind}"
    locale = merchant.default_locale or "en"
    subject, text, html = render_mail(
        template, locale, merchant=merchant, notice=notice, pr=None, **context
    )
    send_mail(", ".join(to), subject, text, html)
    log.info("merchant notice %s (%s) sent to %s address(es)", notice.id, notice.kind, len(to))
