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
    assert "Trop de tentatives" in limited.text
    assert int(limited.headers["Retry-After"]) > 0
    assert client.get(path, environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 200
    _empty(app)
