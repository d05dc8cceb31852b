"""Fixtures: ``app`` and ``client`` on SQLite and PostgreSQL, factories for rows.

Every test that uses ``app`` runs twice: on a fresh SQLite file and on a
PostgreSQL database of its own (made once per test worker from
``PORTAL_TEST_DATABASE_URL``, emptied after each test). Without that variable
the PostgreSQL half is skipped locally, and fails in CI (``CI`` set).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from portal import create_app
from portal.extensions import db as _db

PG_URL = os.environ.get("PORTAL_TEST_DATABASE_URL", "")
TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"
BASE_URL = "https://portal.test"


def _sa_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@pytest.fixture(scope="session")
def pg_database(worker_id: str) -> Iterator[str]:
    """A PostgreSQL database of this test worker's own, with the schema created."""
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("PORTAL_TEST_DATABASE_URL is not set: PostgreSQL tests cannot run in CI")
        pytest.skip("PORTAL_TEST_DATABASE_URL not set: PostgreSQL tests skipped locally")
    admin_url = _sa_url(PG_URL)
    name = f"portal_test_{worker_id}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    app = create_app({"env": "test", "database_url": url, "secret_keys": [TEST_SECRET]})
    with app.app_context():
        _db.create_all()
        _db.engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'portal.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """For tests that need real locks: PostgreSQL only."""
    return pg_database


def make_app(database_url: str, **overrides: object) -> Flask:
    config = {
        "env": "test",
        "database_url": database_url,
        "secret_keys": [TEST_SECRET],
        "base_url": BASE_URL,
        "allow_private_callbacks": True,
        "WTF_CSRF_ENABLED": True,
        # Opens counted in the page's transaction, so a test reads them at once; the
        # batched counter has its own tests (tests/functional/customer/test_opens.py).
        "open_count_flush_seconds": 0,
    }
    config.update(overrides)
    return create_app(config)


def _empty(app: Flask) -> None:
    with app.app_context():
        _db.session.remove()
        if _db.engine.dialect.name == "postgresql":
            tables = ", ".join(f'"{t.name}"' for t in _db.metadata.sorted_tables)
            with _db.engine.begin() as conn:
                # The app's own statement timeout (1 s in some tests) is no limit for the
                # cleanup: on a busy machine the TRUNCATE may wait longer for its locks.
                conn.execute(text("SET LOCAL statement_timeout = 0"))
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        _db.engine.dispose()


def app_in_context(app: Flask, database_url: str) -> Iterator[Flask]:
    """``app`` inside its app context (the SQLite schema created), emptied afterwards."""
    with app.app_context():
        if database_url.startswith("sqlite"):
            _db.create_all()
        yield app
        _db.session.remove()
    _empty(app)


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    yield from app_in_context(make_app(database_url), database_url)


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[Flask]:
    app = make_app(pg_url)
    with app.app_context():
        yield app
        _db.session.remove()
    _empty(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def merchant(app: Flask):
    from tests.factories import make_merchant

    return make_merchant()


@pytest.fixture
def smtp(app: Flask):
    """A real SMTP server on loopback; the app sends its mail there."""
    from tests.servers import SMTPRecorder

    server = SMTPRecorder().start()
    app.config["PORTAL_MAIL_URL"] = server.url
    yield server
    server.stop()
