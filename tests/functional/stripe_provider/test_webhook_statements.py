"""What one Stripe event costs in SQL (issue 18): every row it needs read once, in the
request's one transaction; a duplicate costs the event-id insert and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import event

from portal.extensions import db
from tests.functional.stripe_provider.conftest import intent_event
from tests.functional.stripe_provider.test_webhooks import post, stripe_app, stripe_payment

__all__ = ["stripe_app"]  # the fixture, for this module's tests

# The statements a fulfilment of a two-line statement issues (BEGIN and COMMIT aside):
# the event id, one read of what the event names, the two locks, the receipt's and the
# events' numbers (one UPDATE), the money and the lines (one statement for all the lines'
# standing, one for their allocation rows), two events with their deliveries (one read of
# the endpoints), the receipt job, the other open attempts, the savepoint around the
# change and the event's outcome.
FULFILMENT_BUDGET = 19


@pytest.fixture
def statements(stripe_app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if not statement.startswith("NOTIFY"):  # PostgreSQL's wake-up of the worker
            seen.append(" ".join(statement.split()))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def _reads(statements: list[str], table: str) -> list[str]:
    return [s for s in statements if s.startswith("SELECT") and f" FROM {table} " in f"{s} "]


def test_a_fulfilment_reads_each_row_once(stripe_app, client, merchant, statements):
    body = intent_event(stripe_payment(merchant))
    statements.clear()
    resp = post(client, body)
    assert resp.status_code == 200 and resp.json["outcome"] == "succeeded: applied"
    assert len(statements) <= FULFILMENT_BUDGET, "\n".join(statements)
    # The merchant is never read on its own (its connected account comes with the
    # payment's lookup), the payment's request id is not read again before the locks,
    # and the payment row is read twice only: the lookup (three columns) and its lock.
    assert not _reads(statements, "merchants")
    assert not [s for s in statements if s.startswith("SELECT payments.request_id FROM")]
    payment_reads = _reads(statements, "payments")
    assert payment_reads[0].startswith("SELECT payments.id, payments.request_id, merchants.")
    full_reads = [s for s in payment_reads if "payments.amount" in s]
    assert len(full_reads) == 2  # the lock, and the request's other open attempts
    assert len(_reads(statements, "statement_lines")) == 1  # the default statement's 2 lines
    # The payment's changes and its receipt number go out in one UPDATE; the receipt's
    # and the two events' numbers in another, of the merchant.
    assert len([s for s in statements if s.startswith("UPDATE payments ")]) == 1
    assert len([s for s in statements if s.startswith("UPDATE merchants ")]) == 1
    assert len([s for s in statements if " FROM callback_endpoints " in s]) == 1


def test_a_duplicate_costs_the_event_id_insert_only(stripe_app, client, merchant, statements):
    payment = stripe_payment(merchant)
    body = intent_event(payment)
    assert post(client, body).status_code == 200
    statements.clear()
    resp = post(client, body)
    assert resp.status_code == 200 and resp.json["duplicate"] is True
    assert [s.split(" (")[0] for s in statements] == ["INSERT INTO stripe_events"]
