"""The API answers 429 with Retry-After once a key exceeds its rate."""

from __future__ import annotations

import pytest

from portal.extensions import db
from tests.conftest import make_app
from tests.factories import make_merchant


@pytest.fixture
def limited_app(database_url):
    app = make_app(database_url, RATELIMIT_ENABLED=True, api_rate_limit="3 per minute")
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
        yield app
        db.session.remove()
    from tests.conftest import _empty

    _empty(app)


def test_api_rate_limit_per_key(limited_app):
    client = limited_app.test_client()
    a, b = make_merchant(name="A"), make_merchant(name="B")
    for _ in range(3):
        assert client.get("/api/v1/payment-requests", headers=a.headers).status_code == 200
    resp = client.get("/api/v1/payment-requests", headers=a.headers)
    assert resp.status_code == 429
    assert resp.json["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) > 0
    # another merchant's key has its own budget
    assert client.get("/api/v1/payment-requests", headers=b.headers).status_code == 200


def test_link_pages_are_rate_limited_per_client(database_url):
    from portal.links import link_token
    from tests.conftest import _empty
    from tests.factories import make_request

    app = make_app(database_url, RATELIMIT_ENABLED=True, link_rate_limit="2 per minute")
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
        path = f"/p/{link_token(make_request(make_merchant()).id)}"
        db.session.remove()
    # each request in its own app context, as in production
    client = app.test_client()
    ip = {"REMOTE_ADDR": f"10.9.8.{database_url.startswith('sqlite') + 1}"}
    assert client.get(path, environ_base=ip).status_code == 200
    assert client.get(path, environ_base=ip).status_code == 200
    limited = client.get(path, environ_base=ip, headers={"Accept-Language": "fr"})
    assert limited.status_code == 429
    # the link's language (its customer reads Dutch), not the browser's (docs/customer-portal.md)
    assert "Te veel pogingen" in limited.text and 'lang="nl"' in limited.text
    chosen = client.get(path + "?lang=fr", environ_base=ip, headers={"Accept-Language": "nl"})
    assert chosen.status_code == 429 and "Trop de tentatives" in chosen.text
    assert int(limited.headers["Retry-After"]) > 0
    assert client.get(path, environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 200
    _empty(app)


def test_limits_are_shared_through_redis(database_url):
    """Two web processes (two apps here) count against the same Redis."""
    import os

    import redis

    from tests.conftest import _empty

    store = redis.Redis(host="127.0.0.1", port=6379, db=15)
    try:
        store.flushdb()
    except redis.ConnectionError:
        store.close()
        if os.environ.get("CI"):
            pytest.fail("Redis is not reachable at 127.0.0.1:6379")
        pytest.skip("Redis not reachable: shared rate limits not tested locally")
    settings = {"RATELIMIT_ENABLED": True, "api_rate_limit": "3 per minute",
                "ratelimit_storage_url": "redis://127.0.0.1:6379/15"}  # fmt: skip
    from portal.extensions import limiter

    first = make_app(database_url, **settings)
    storages = [limiter.storage]
    with first.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
        m = make_merchant()
        db.session.remove()
    second = make_app(database_url, **settings)
    storages.append(limiter.storage)
    for client in (first.test_client(), second.test_client(), first.test_client()):
        assert client.get("/api/v1/payment-requests", headers=m.headers).status_code == 200
    limited = second.test_client().get("/api/v1/payment-requests", headers=m.headers)
    assert limited.status_code == 429
    assert any(b"api:" in key for key in store.keys("*"))
    store.flushdb()
    store.close()
    for storage in storages:  # each app opened its own connections
        storage.storage.close()
        storage.storage.connection_pool.disconnect()
    _empty(first)


def _limited(database_url, **settings):
    app = make_app(database_url, RATELIMIT_ENABLED=True, **settings)
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
    return app


def test_pay_attempts_are_limited_per_link_from_any_address(database_url):
    """Card testing spread over many addresses still stops at the link's budget."""
    import re

    from portal.links import link_token
    from tests.conftest import _empty
    from tests.factories import make_request

    app = _limited(database_url, pay_rate_limit="3 per 10 minutes")
    with app.app_context():
        merchant = make_merchant()
        first, other = make_request(merchant), make_request(merchant)
        paths = [f"/p/{link_token(first.id)}", f"/p/{link_token(other.id)}"]
        db.session.remove()
    statuses = []
    for n in range(4):
        client = app.test_client()
        ip = {"REMOTE_ADDR": f"10.20.{database_url.startswith('sqlite')}.{n}"}
        page = client.get(paths[0], environ_base=ip)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        data = {"csrf_token": csrf.group(1) if csrf else ""}
        statuses.append(client.post(f"{paths[0]}/pay", data=data, environ_base=ip).status_code)
    assert statuses[:3] == [303] * 3 and statuses[3] == 429
    # the link page itself and another link are not blocked
    client = app.test_client()
    assert client.get(paths[0], environ_base={"REMOTE_ADDR": "10.21.0.1"}).status_code == 200
    page = client.get(paths[1], environ_base={"REMOTE_ADDR": "10.21.0.1"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    resp = client.post(
        f"{paths[1]}/pay", data={"csrf_token": csrf}, environ_base={"REMOTE_ADDR": "10.21.0.1"}
    )
    assert resp.status_code == 303
    _empty(app)


def test_client_address_comes_from_the_proxy_only_when_configured(database_url):
    from portal.links import link_token
    from tests.conftest import _empty
    from tests.factories import make_request

    for hops in (0, 1):
        app = _limited(database_url, link_rate_limit="1 per minute", proxy_hops=hops)
        with app.app_context():
            path = f"/p/{link_token(make_request(make_merchant()).id)}"
            db.session.remove()
        client = app.test_client()
        proxy = {"REMOTE_ADDR": f"10.30.{hops}.{database_url.startswith('sqlite')}"}
        statuses = [
            client.get(
                path, environ_base=proxy, headers={"X-Forwarded-For": f"198.51.100.{n}"}
            ).status_code
            for n in range(3)
        ]
        if hops:  # three customers behind one proxy: each has its own budget
            assert statuses == [200, 200, 200]
        else:  # forwarded headers are ignored: one client, and a spoofed header is no escape
            assert statuses == [200, 429, 429]
        _empty(app)


def _port_where_nothing_listens() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_down_fails_open_to_per_process_limits(database_url, caplog):
    """Redis unreachable: pages and API answer (no 500), limits still count in this
    process, one log line without a traceback says so, /readyz and /metrics show it."""
    import logging

    from portal.extensions import limiter
    from portal.links import link_token
    from tests.conftest import _empty
    from tests.factories import make_request

    dead = f"redis://127.0.0.1:{_port_where_nothing_listens()}/0"
    app = _limited(
        database_url, ratelimit_storage_url=dead, link_rate_limit="3 per minute",
        api_rate_limit="100 per minute",
    )  # fmt: skip
    try:
        with app.app_context():
            m = make_merchant()
            path = f"/p/{link_token(make_request(m).id)}"
            db.session.remove()
        client = app.test_client()
        with caplog.at_level(logging.INFO):
            assert client.get("/api/v1/payment-requests", headers=m.headers).status_code == 200
            statuses = [client.get(path).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # the link limit still holds, per process
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert warnings and warnings[0].levelno == logging.WARNING
        assert not [r for r in caplog.records if r.exc_info]
        ready = client.get("/readyz")
        checks = ready.json["checks"]
        assert checks["ratelimit"].startswith("unreachable")
        # Fail-open: Redis does not decide readiness, the database and its schema do.
        deciding = [checks[name] for name in ("database", "migrations", "jobs")]
        assert (ready.status_code == 200) == (deciding == ["ok"] * 3)
        metrics = client.get("/metrics").text
        assert "portal_ratelimit_storage_up 0.0" in metrics
    finally:
        limiter._storage_dead = False  # the limiter is one object for every app in this process
        _empty(app)


def test_readyz_and_metrics_show_a_live_rate_limit_storage(limited_app):
    client = limited_app.test_client()
    assert client.get("/readyz").json["checks"]["ratelimit"] == "ok"
    assert "portal_ratelimit_storage_up 1.0" in client.get("/metrics").text


def test_qr_codes_count_against_the_link_limit(database_url):
    from portal.links import link_token
    from tests.conftest import _empty
    from tests.factories import make_request

    app = _limited(database_url, link_rate_limit="2 per minute")
    with app.app_context():
        token = link_token(make_request(make_merchant()).id)
        db.session.remove()
    client = app.test_client()
    ip = {"REMOTE_ADDR": "10.7.7.7"}
    assert client.get(f"/p/{token}/qr.svg", environ_base=ip).status_code == 200
    assert client.get(f"/p/{token}/qr.png", environ_base=ip).status_code == 200
    assert client.get(f"/p/{token}/qr.png", environ_base=ip).status_code == 429
    assert client.get(f"/p/{token}/qr.svg", environ_base=ip).status_code == 429
    _empty(app)


def test_provider_webhooks_are_rate_limited(database_url):
    from tests.conftest import _empty

    app = _limited(database_url, webhook_rate_limit="2 per minute")
    client = app.test_client()
    ip = {"REMOTE_ADDR": "10.6.6.6"}
    statuses = [
        client.post("/webhooks/stripe", data=b"{}", environ_base=ip).status_code for _ in range(3)
    ]
    assert statuses[:2] != [429, 429] and statuses[2] == 429
    _empty(app)


def test_every_console_page_is_rate_limited(database_url):
    from tests.conftest import _empty

    app = _limited(database_url, console_rate_limit="3 per minute")
    client = app.test_client()
    ip = {"REMOTE_ADDR": "10.5.5.5"}
    for path in ("/support/", "/support/search?q=x", "/support/audit"):
        assert client.get(path, environ_base=ip).status_code == 302  # to the sign-in page
    limited = client.get("/support/requests/pr_x", environ_base=ip)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    _empty(app)


def test_retry_after_only_on_429_and_503(limited_app):
    client = limited_app.test_client()
    m = make_merchant()
    from tests.factories import statement_body

    created = client.post("/api/v1/payment-requests", json=statement_body(), headers=m.headers)
    assert created.status_code == 201
    assert "Retry-After" not in created.headers
    assert "X-RateLimit-Limit" in created.headers  # the limiter's own headers stay
    listed = client.get("/api/v1/payment-requests", headers=m.headers)
    assert listed.status_code == 200 and "Retry-After" not in listed.headers
    limited = client.get("/api/v1/payment-requests", headers=m.headers)
    limited = client.get("/api/v1/payment-requests", headers=m.headers)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
