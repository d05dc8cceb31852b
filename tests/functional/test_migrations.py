"""The migrations build the schema the models describe (``alembic check``), on both engines."""

from __future__ import annotations

import uuid

import pytest
from flask_migrate import check, downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

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
