"""PORTAL_DB_STATEMENT_TIMEOUT on PostgreSQL: a request stuck behind a lock (or on a runaway
query) ends with a 503 the client retries, instead of holding its thread until gunicorn
kills the worker; the same request succeeds once the lock is gone."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from portal.config import ConfigError, Settings
from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from tests.conftest import _empty, make_app
from tests.factories import make_merchant, make_request


@pytest.fixture
def timed_app(pg_url):
    app = make_app(pg_url, db_statement_timeout=1)
    with app.app_context():
        yield app
        db.session.remove()
    _empty(app)


# The limit is 1 s; a statement that was not cancelled would sleep SLEEP seconds (or wait
# for its lock forever). Anything well under SLEEP proves the cancel, however busy the
# machine: the bound is not a measurement of how fast the cancel is.
SLEEP = 60
BOUND = 30


def test_a_statement_past_the_timeout_is_cancelled(timed_app):
    started = time.monotonic()
    with pytest.raises(OperationalError, match="statement timeout"):
        db.session.execute(text(f"SELECT pg_sleep({SLEEP})"))
    assert time.monotonic() - started < BOUND
    db.session.rollback()
    assert db.session.execute(text("SHOW statement_timeout")).scalar() == "1s"


def test_a_request_stuck_behind_a_lock_gets_a_503_then_succeeds(timed_app, pg_url):
    merchant = make_merchant()
    pr = make_request(merchant)
    request_id = pr.id
    db.session.commit()
    client = timed_app.test_client()
    other = create_engine(db.engine.url)  # no timeout: it holds the row as long as it likes
    try:
        with other.connect() as holder:
            holder.execute(
                text("SELECT id FROM payment_requests WHERE id = :id FOR UPDATE"),
                {"id": request_id},
            )
            started = time.monotonic()
            stuck = client.post(
                f"/api/v1/payment-requests/{request_id}/void", headers=merchant.headers
            )
            assert time.monotonic() - started < BOUND
            assert stuck.status_code == 503, stuck.text
            assert stuck.json["error"]["code"] == "service_unavailable"
            assert stuck.headers["Retry-After"]
            holder.rollback()
        retried = client.post(
            f"/api/v1/payment-requests/{request_id}/void", headers=merchant.headers
        )
        assert retried.status_code == 200, retried.text
    finally:
        other.dispose()
    db.session.expire_all()
    assert db.session.get(PaymentRequest, request_id).status == "void"


def test_the_setting_is_read_and_checked():
    assert Settings.from_env({"PORTAL_DB_STATEMENT_TIMEOUT": "7"}).db_statement_timeout == 7
    assert Settings.from_env({}).db_statement_timeout == 20
    with pytest.raises(ConfigError, match="PORTAL_DB_STATEMENT_TIMEOUT"):
        Settings.from_env({"PORTAL_DB_STATEMENT_TIMEOUT": "-1"})


def test_migrations_lift_the_timeout_and_give_it_back(pg_url):
    """env.py runs migrations without the limit (an index on a big table takes minutes),
    then returns the pooled connection with the app's limit again."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import event

    app = make_app(pg_url, db_statement_timeout=1)
    seen: list[str] = []
    with app.app_context():
        db.engine.dispose()
        with db.engine.connect() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            conn.commit()
        db.drop_all()

        def watch(conn, cursor, statement, *args):
            if statement.lstrip().startswith("CREATE TABLE merchants"):
                cursor.execute("SHOW statement_timeout")
                seen.append(cursor.fetchone()[0])

        event.listen(db.engine, "before_cursor_execute", watch)
        try:
            upgrade()
        finally:
            event.remove(db.engine, "before_cursor_execute", watch)
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1s"
        downgrade(revision="base")
        db.create_all()  # the schema the other tests of this worker expect
        db.session.remove()
        db.engine.dispose()
    assert seen == ["0"]
