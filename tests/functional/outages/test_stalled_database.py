"""A PostgreSQL server that accepts connections and then says nothing (stalled, not
down): requests still fail in a bounded time with a 503, thanks to the connect timeout
(``connect_timeout`` in portal/config.py), and all succeed once it answers again."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask_migrate import upgrade
from werkzeug.serving import make_server

from portal.extensions import db
from portal.links import link_token
from tests.conftest import _empty, make_app
from tests.factories import make_merchant, make_request, statement_body

# The app gives up connecting after 5 s; without a connect timeout a request would wait
# for as long as the server stalls, and this client bound would fail the test first.
CLIENT_TIMEOUT = 20


@pytest.fixture
def served(cluster):
    app = make_app(cluster.url, WTF_CSRF_ENABLED=False)
    with app.app_context():
        upgrade()
        merchant = make_merchant()
        path = f"/p/{link_token(make_request(merchant).id)}"
        headers = merchant.headers
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.port}", path, headers
    server.shutdown()
    _empty(app)


def _traffic(base: str, path: str, headers: dict[str, str], key: str) -> list[int]:
    """The customer's page, an API read and an API create, at once."""
    calls = [
        lambda: requests.get(f"{base}{path}", timeout=CLIENT_TIMEOUT),
        lambda: requests.get(
            f"{base}/api/v1/payment-requests", headers=headers, timeout=CLIENT_TIMEOUT
        ),
        lambda: requests.post(
            f"{base}/api/v1/payment-requests",
            headers={**headers, "Idempotency-Key": key},
            json=statement_body(reference=key),
            timeout=CLIENT_TIMEOUT,
        ),
    ]
    with ThreadPoolExecutor(len(calls)) as pool:
        return [r.status_code for r in pool.map(lambda call: call(), calls)]


def test_a_stalled_server_costs_503s_in_bounded_time_and_nothing_after(cluster, served):
    app, base, path, headers = served
    assert _traffic(base, path, headers, "before") == [200, 200, 201]

    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGSTOP)  # connections are accepted, never answered
    try:
        with app.app_context():
            db.engine.dispose()  # the pool's connections are gone: every request connects
        stalled = _traffic(base, path, headers, "during")
    finally:
        os.kill(postmaster, signal.SIGCONT)
    assert stalled == [503, 503, 503]

    after = [_traffic(base, path, headers, f"after-{n}") for n in range(3)]
    assert after == [[200, 200, 201]] * 3
