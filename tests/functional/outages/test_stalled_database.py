"""A PostgreSQL server that accepts connections and then says nothing (stalled, not
down): requests still fail in a bounded time with a 503, thanks to the connect timeout
(``connect_timeout`` in portal/config.py), and all succeed once it answers again."""

from __future__ import annotations

import os
import signal

import pytest
from flask_migrate import upgrade

from portal.extensions import db
from portal.links import link_token
from tests.conftest import _empty, make_app
from tests.factories import make_merchant, make_request
from tests.functional.outages.conftest import traffic
from tests.servers import serve_wsgi

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
    with serve_wsgi(app) as base:
        yield app, base, path, headers
    _empty(app)


def _traffic(base: str, path: str, headers: dict[str, str], key: str) -> list[int]:
    return traffic(base, path, headers, key, timeout=CLIENT_TIMEOUT)


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
