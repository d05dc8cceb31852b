"""The reconciliation export: payments, refunds and line allocations of a date range.

One CSV, one row per record, for the merchant's books: ``payment`` rows (money applied
to a request, by the day it succeeded), ``refund`` rows (by the day they were made) and
``allocation`` rows (what each payment settled, or each refund undid, on a statement
line). Amounts are minor units, signed as the ledger sees them (refunds negative). The
payment rows add up to the ``payment.succeeded`` events of the same days, the refund
rows to the ``payment.refunded`` events (the events API).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest, StatementLine
from portal.payments.models import Allocation, Payment, Refund

COLUMNS = ("record", "id", "at", "request_id", "request_reference", "customer_reference",
           "payment_id", "refund_id", "line_reference", "amount", "currency", "method")  # fmt: skip
MAX_DAYS = 366


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    return datetime.combine(since, time(0), UTC), datetime.combine(
        until + timedelta(days=1), time(0), UTC
    )


def rows(merchant: Merchant, since: date, until: date) -> list[dict[str, object]]:
    """The records of ``since`` to ``until`` (both included, UTC days), in time order."""
    start, end = _bounds(since, until)
    out: list[dict[str, object]] = []
    payments = db.session.execute(
        select(Payment, PaymentRequest)
        .join(PaymentRequest, PaymentRequest.id == Payment.request_id)
        .where(Payment.merchant_id == merchant.id, Payment.applied.is_(True),
               Payment.succeeded_at >= start, Payment.succeeded_at < end)
    ).all()  # fmt: skip
    for p, pr in payments:
        out.append({"record": "payment", "id": p.id, "at": p.succeeded_at, "request_id": pr.id,
                    "request_reference": pr.reference, "customer_reference": pr.customer_reference,
                    "payment_id": p.id, "amount": p.amount, "currency": p.currency,
                    "method": p.card_brand or p.method_type})  # fmt: skip
    refunds = db.session.execute(
        select(Refund, Payment, PaymentRequest)
        .join(Payment, Payment.id == Refund.payment_id)
        .join(PaymentRequest, PaymentRequest.id == Payment.request_id)
        .where(Payment.merchant_id == merchant.id, Refund.created_at >= start,
               Refund.created_at < end)
    ).all()  # fmt: skip
    for r, p, pr in refunds:
        out.append({"record": "refund", "id": r.id, "at": r.created_at, "request_id": pr.id,
                    "request_reference": pr.reference, "customer_reference": pr.customer_reference,
                    "payment_id": p.id, "refund_id": r.id, "amount": -r.amount,
                    "currency": r.currency})  # fmt: skip
    allocations = db.session.execute(
        select(Allocation, StatementLine, Payment, PaymentRequest)
        .join(StatementLine, StatementLine.id == Allocation.line_id)
        .join(Payment, Payment.id == Allocation.payment_id)
        .join(PaymentRequest, PaymentRequest.id == Payment.request_id)
        .where(Payment.merchant_id == merchant.id, Allocation.created_at >= start,
               Allocation.created_at < end)
    ).all()  # fmt: skip
    for a, line, p, pr in allocations:
        out.append({"record": "allocation", "id": str(a.id), "at": a.created_at,
                    "request_id": pr.id, "request_reference": pr.reference,
                    "customer_reference": pr.customer_reference, "payment_id": p.id,
                    "refund_id": a.refund_id, "line_reference": line.reference,
                    "amount": a.amount, "currency": p.currency})  # fmt: skip
    order = {"payment": 0, "allocation": 1, "refund": 2}
    out.sort(key=lambda row: (row["at"], order[str(row["record"])]))
    return out


def csv_text(merchant: Merchant, since: date, until: date) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows(merchant, since, until):
        at = row["at"]
        when = at.isoformat().replace("+00:00", "Z") if isinstance(at, datetime) else ""
        writer.writerow({**row, "at": when})
    return buffer.getvalue()


def totals(merchant: Merchant, since: date, until: date) -> tuple[int, int]:
    """(sum of the payment rows, sum of the refund rows, negative)."""
    records = rows(merchant, since, until)
    paid = sum(int(str(r["amount"])) for r in records if r["record"] == "payment")
    refunded = sum(int(str(r["amount"])) for r in records if r["record"] == "refund")
    return paid, refunded
