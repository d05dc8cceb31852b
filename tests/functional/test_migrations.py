"""The migrations build the schema the models describe (``alembic check``), on both engines."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from flask_migrate import check, downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from tests.conftest import PG_URL, _sa_url, make_app


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    request.getfixturevalue("pg_database")  # skips locally / fails in CI without PostgreSQL
    admin = create_engine(_sa_url(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"portal_migrate_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(_sa_url(PG_URL)).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_matches_models_and_downgrades(empty_database):
    app = make_app(empty_database)
    with app.app_context():
        upgrade()
        check()  # raises when the models and the migrations differ
        tables = set(inspect(db.engine).get_table_names())
        assert {"merchants", "payment_requests", "payments", "events", "jobs"} <= tables
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


NOW = "2026-11-20 10:00:00"
# Rows as revision 0001 wrote them: a statement paid in two parts (one refunded), a request
# left with two open attempts by the unlocked SQLite path, and a refund made at Stripe.
ROWS_0001 = [
    "INSERT INTO merchants (id, name, display_name, currency, default_locale, locales, ceiling,"
    " accent_color, embed_origins, event_seq, created_at) VALUES ('mer_1', 'Shop', 'Shop',"
    " 'EUR', 'en', '[]', 1000000, '#1f5f8b', '[]', 0, :now)",
    *[
        "INSERT INTO payment_requests (id, merchant_id, kind, status, currency, amount,"
        " amount_paid, amount_refunded, expires_at, metadata, allow_partial, allow_full_payment,"
        " wallet_suggested, created_at, updated_at, open_count, balance) VALUES"
        f" ('{pr}', 'mer_1', 'statement', '{status}', 'EUR', 10000, {paid}, {refunded}, :now,"
        " '{}', true, false, '[]', :now, :now, 0, 10000)"
        for pr, status, paid, refunded in (("pr_1", "paid", 10000, 1000), ("pr_2", "open", 0, 0))
    ],
    "INSERT INTO statement_lines (request_id, position, date, description, amount, reference)"
    " VALUES ('pr_1', 0, '2026-10-03', 'Bread', 5000, 'T-881'),"
    " ('pr_1', 1, '2026-10-10', 'Credit', -1000, 'C-12'),"
    " ('pr_1', 2, '2026-10-20', 'Wine', 6000, 'T-902')",
    *[
        "INSERT INTO payments (id, request_id, merchant_id, amount, currency, status, provider,"
        " amount_refunded, flagged, provider_data, created_at, updated_at, succeeded_at,"
        f" receipt_number) VALUES ('{pay}', '{pr}', 'mer_1', {amount}, 'EUR', '{status}',"
        f" 'stripe', {refunded}, false, '{{}}', '{created}', '{created}', {succeeded},"
        f" {receipt})"
        for pay, pr, amount, status, refunded, created, succeeded, receipt in (
            (
                "pay_1",
                "pr_1",
                2000,
                "succeeded",
                0,
                "2026-11-01 10:00:00",
                "'2026-11-01 10:00:00'",
                "'R20261101-AAAA0001'",
            ),
            (
                "pay_2",
                "pr_1",
                8000,
                "partially_refunded",
                1000,
                "2026-11-02 10:00:00",
                "'2026-11-02 10:00:00'",
                "'R20261102-AAAA0002'",
            ),
            ("pay_3", "pr_2", 10000, "pending", 0, "2026-11-03 10:00:00", "NULL", "NULL"),
            ("pay_4", "pr_2", 5000, "pending", 0, "2026-11-04 10:00:00", "NULL", "NULL"),
        )
    ],
    "INSERT INTO refunds (id, payment_id, merchant_id, amount, currency, status,"
    " provider_refund_id, reason, created_at) VALUES ('re_1', 'pay_2', 'mer_1', 1000, 'EUR',"
    " 'succeeded', NULL, 'refunded at the provider', '2026-11-03 10:00:00')",
]


def _at_0001_with_rows() -> None:
    upgrade(revision="0001")
    with db.engine.begin() as conn:
        for statement in ROWS_0001:
            conn.execute(text(statement), {"now": NOW})


def test_upgrading_a_database_with_data_keeps_the_books(empty_database):
    app = make_app(empty_database)
    with app.app_context():
        _at_0001_with_rows()
        upgrade()
        check()
        with db.engine.begin() as conn:
            applied = dict(conn.execute(text("SELECT id, applied FROM payments")).all())
            assert {k: bool(v) for k, v in applied.items()} == {
                "pay_1": True, "pay_2": True, "pay_3": False, "pay_4": False,
            }  # fmt: skip
            statuses = dict(conn.execute(text("SELECT id, status FROM payments")).all())
            assert statuses["pay_3"] == "canceled" and statuses["pay_4"] == "pending"
            settled = conn.execute(
                text("SELECT reference, amount_settled FROM statement_lines ORDER BY position")
            ).all()
            # The documented rule, replayed: the example of docs/callbacks.md.
            assert settled == [("T-881", 5000), ("C-12", -1000), ("T-902", 5000)]
            shares = conn.execute(
                text("SELECT payment_id, refund_id, amount FROM payment_allocations ORDER BY id")
            ).all()
            assert shares == [
                ("pay_1", None, 3000), ("pay_1", None, -1000),
                ("pay_2", None, 2000), ("pay_2", None, 6000), ("pay_2", "re_1", -1000),
            ]  # fmt: skip
            source = conn.execute(text("SELECT source FROM refunds")).scalar_one()
            assert source == "provider"
            # The invariants now hold in the database itself.
            for broken in (
                "UPDATE payment_requests SET amount_paid = 20000 WHERE id = 'pr_1'",
                "UPDATE payments SET status = 'pending' WHERE id = 'pay_3'",
                "UPDATE payments SET amount = 0 WHERE id = 'pay_1'",
                "UPDATE payment_requests SET status = 'half_paid' WHERE id = 'pr_2'",
            ):
                with pytest.raises(IntegrityError), conn.begin_nested():
                    conn.execute(text(broken))
        db.engine.dispose()


def test_an_upgrade_stops_on_rows_that_break_an_invariant(empty_database, caplog):
    app = make_app(empty_database)
    with app.app_context():
        _at_0001_with_rows()
        with db.engine.begin() as conn:
            # What the double fulfilment left: a request paid twice over.
            conn.execute(text("UPDATE payment_requests SET amount_paid = 20000 WHERE id = 'pr_1'"))
        with pytest.raises(SystemExit):  # Flask-Migrate logs the error and exits
            upgrade()
        assert "requests paid beyond what they ask: pr_1" in caplog.text
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
        db.engine.dispose()


# Released revisions never change: a database that ran one must stay what it says.
RELEASED = {
    "0001_initial.py": "9103d0fb3a847045c40ec050e52ebdd67285a92684617a7756bfeb28c3894bd0",
    "0002_money_invariants.py": "4f6b9684f57cc7a54edc97a89974532e14fe3a7b57d419ac8e3185a1508bd1f9",
    "0003_jobs_claim.py": "a4d0f5bae2befdb6ba5c3991b31caffb87dd91a663c6abdeb6244c35ab094023",
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_revisions_are_frozen(name):
    path = Path(__file__).resolve().parents[2] / "migrations" / "versions" / name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == RELEASED[name], (
        f"{name} is released: add a new revision instead of editing it"
    )
