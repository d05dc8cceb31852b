"""The request's one commit, when it fails: the answer says what happened (409 on a
constraint, 400 on a value the database refuses, 503 when it cannot write), never the
view's "done", and nothing of the request is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from portal.extensions import db
from portal.merchants.models import Merchant
from tests.conftest import app_in_context, make_app
from tests.factories import make_merchant


def _app(database_url: str):
    """The test app with routes that leave a change pending for the boundary to commit."""
    app = make_app(database_url)

    def pending(kind: str) -> tuple[str, int]:
        existing = db.session.scalars(select(Merchant)).first()
        if kind == "constraint":  # a second merchant with the first one's id
            db.session.add(
                Merchant(
                    id=existing.id,
                    name="Twin",
                    display_name="Twin",
                    currency="EUR",
                    ceiling=100,
                    event_seq=0,
                    receipt_seq=0,
                )
            )
        elif kind == "too_long":  # currency is three characters
            existing.currency = "EURO" * 10
        elif kind == "read_only":
            db.session.execute(text("PRAGMA query_only = ON"))
            existing.display_name = "Renamed"
        return "done", 200

    app.add_url_rule("/api/v1/_pending/<kind>", "api_pending", pending, methods=["POST"])
    app.add_url_rule("/_pending/<kind>", "page_pending", pending, methods=["POST"])
    app.config["WTF_CSRF_ENABLED"] = False
    yield from app_in_context(app, database_url)


@pytest.fixture
def app(database_url: str):
    yield from _app(database_url)


@pytest.fixture
def pg_only_app(pg_url: str):
    yield from _app(pg_url)


@pytest.fixture
def sqlite_only_app(tmp_path):
    yield from _app(f"sqlite:///{tmp_path / 'boundary.db'}")


def _merchants() -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(Merchant))


def test_a_constraint_broken_at_commit_is_a_409_and_stores_nothing(app):
    make_merchant()
    client = app.test_client()
    api = client.post("/api/v1/_pending/constraint")
    assert api.status_code == 409
    assert api.json["error"]["code"] == "conflict"
    page = client.post("/_pending/constraint")
    assert page.status_code == 409 and "done" not in page.text
    assert _merchants() == 1


def test_a_value_the_database_refuses_at_commit_is_a_400(pg_only_app):
    # PostgreSQL's check: SQLite stores a string of any length.
    merchant_id = make_merchant().merchant.id
    resp = pg_only_app.test_client().post("/api/v1/_pending/too_long")
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_value"
    db.session.remove()
    assert db.session.get(Merchant, merchant_id).currency == "EUR"


def test_a_database_that_cannot_write_is_a_503_to_retry(sqlite_only_app):
    # SQLite's PRAGMA query_only refuses the write at commit, as a database gone read-only.
    merchant_id = make_merchant().merchant.id
    resp = sqlite_only_app.test_client().post("/api/v1/_pending/read_only")
    db.engine.dispose()  # the connection that was made read-only
    assert resp.status_code == 503
    assert resp.json["error"]["code"] == "service_unavailable"
    assert resp.headers["Retry-After"] == "5"
    db.session.remove()
    assert db.session.get(Merchant, merchant_id).display_name == "Test Shop"
