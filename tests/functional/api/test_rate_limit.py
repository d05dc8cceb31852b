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
