"""Link opens counted in the web process and written in batches (portal/customer/opens.py):
every open counts, raced by real threads against a served app on PostgreSQL; a flush the
database refuses keeps its opens for the next one; SQLite counts in the page's request."""

from __future__ import annotations

import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, text

from portal.customer.opens import EXTENSION, flush_app
from portal.extensions import db
from portal.links import link_token
from portal.payment_requests.models import PaymentRequest
from tests.conftest import _empty, _sa_url, app_in_context, make_app
from tests.factories import make_merchant, make_request, statement_body
from tests.servers import serve_wsgi, wait_until


@pytest.fixture
def batched(pg_url):
    """The production counter, its thread too slow to flush during a test by itself."""
    app = make_app(pg_url, open_count_flush_seconds=3600)
    with app.app_context():
        yield app
        app.extensions[EXTENSION].stop()
        db.session.remove()
    _empty(app)


def _counts(*requests):
    db.session.expire_all()
    return [db.session.get(PaymentRequest, pr.id).open_count for pr in requests]


def test_every_open_of_racing_customers_counts_once_flushed(batched):
    merchant = make_merchant()
    first, second = (
        make_request(merchant),
        make_request(merchant, statement_body(reference="INV-2")),
    )
    paths = [f"/p/{link_token(first.id)}"] * 30 + [f"/p/{link_token(second.id)}"] * 10
    with serve_wsgi(batched) as base:
        go = threading.Event()  # the 8 threads start together, then race through the rest

        def get(path):
            go.wait(timeout=60)
            with urllib.request.urlopen(base + path, timeout=60) as resp:
                return resp.status

        with ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(get, path) for path in paths]
            go.set()
            assert {answer.result() for answer in answers} == {200}
    counter = batched.extensions[EXTENSION]
    assert counter.pending() == 40
    assert _counts(first, second) == [0, 0]  # nothing written on the page's path
    assert flush_app(batched) == 40
    assert _counts(first, second) == [30, 10]
    pr = db.session.get(PaymentRequest, first.id)
    assert pr.first_opened_at is not None and pr.last_opened_at >= pr.first_opened_at
    assert counter.pending() == 0 and flush_app(batched) == 0


def test_a_flush_the_database_refuses_keeps_its_opens(pg_url):
    # A statement timeout of 1 s, and the request's row locked by another transaction.
    app = make_app(pg_url, open_count_flush_seconds=3600, db_statement_timeout=1)
    with app.app_context():
        merchant = make_merchant()
        pr = make_request(merchant)
        client = app.test_client()
        for _ in range(3):
            assert client.get(f"/p/{link_token(pr.id)}").status_code == 200
        engine = create_engine(_sa_url(pg_url))
        with engine.connect() as locker:
            locker.execute(text("SELECT 1 FROM payment_requests WHERE id = :i FOR UPDATE"),
                           {"i": pr.id})  # fmt: skip
            assert flush_app(app) == 0  # refused: kept
            assert app.extensions[EXTENSION].pending() == 3
            locker.rollback()
        engine.dispose()
        assert client.get(f"/p/{link_token(pr.id)}").status_code == 200
        assert flush_app(app) == 4
        assert _counts(pr) == [4]
        app.extensions[EXTENSION].stop()
        db.session.remove()
    _empty(app)


def test_the_thread_writes_the_opens_by_itself(pg_url):
    app = make_app(pg_url, open_count_flush_seconds=0.05)
    with app.app_context():
        pr = make_request(make_merchant())
        assert app.test_client().get(f"/p/{link_token(pr.id)}").status_code == 200
        assert any(t.name == "open-counter" for t in threading.enumerate())
        assert wait_until(lambda: _counts(pr) == [1], timeout=60)
        app.extensions[EXTENSION].stop()
        db.session.remove()
    _empty(app)


def test_gunicorn_s_worker_exit_hook_writes_what_is_left(batched, monkeypatch, tmp_path):
    import importlib.util

    from portal.config import ROOT

    # gunicorn.conf.py points Prometheus at a multiprocess folder through the environment;
    # that setting must end with this test, or every later /metrics in this process reads
    # an empty folder instead of its own counters.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    pr = make_request(make_merchant())
    assert batched.test_client().get(f"/p/{link_token(pr.id)}").status_code == 200
    conf.worker_exit(SimpleNamespace(log=None), SimpleNamespace(wsgi=batched))
    assert _counts(pr) == [1]
    assert flush_app(None) == 0  # a worker whose app did not load: nothing to write


def test_sqlite_counts_in_the_page_s_own_transaction(tmp_path):
    url = f"sqlite:///{tmp_path / 'portal.db'}"
    for app in app_in_context(make_app(url, open_count_flush_seconds=1.0), url):
        assert EXTENSION not in app.extensions
        pr = make_request(make_merchant())
        assert app.test_client().get(f"/p/{link_token(pr.id)}").status_code == 200
        assert _counts(pr) == [1]


def test_a_tally_put_back_adds_to_the_opens_since():
    from datetime import UTC, datetime, timedelta

    from portal.customer.opens import OpenCounter

    counter = OpenCounter(None, 3600)  # type: ignore[arg-type]
    earlier = datetime(2026, 12, 1, tzinfo=UTC)
    try:
        counter.record("pr_a", earlier + timedelta(hours=1))
        counter._put_back({"pr_a": [2, earlier, earlier], "pr_b": [1, earlier, earlier]})
        assert counter.pending() == 4
        assert counter._pending["pr_a"][:2] == [3, earlier]  # the first open is the earliest
    finally:
        counter.stop()
        counter._pending.clear()  # nothing for its exit flush to write
