"""Signed links: tampered and unknown tokens get the same plain 404 page; a known but
expired link says so (410) with the merchant's contact."""

from __future__ import annotations

from datetime import timedelta

from portal import create_app
from portal.db_types import utcnow
from portal.extensions import db
from portal.links import link_token, request_id_from_token
from tests.conftest import TEST_SECRET
from tests.factories import make_request


def _path(pr_id: str) -> str:
    return f"/p/{link_token(pr_id)}"


def test_open_link_shows_merchant_and_amount(client, merchant):
    pr = make_request(merchant)
    resp = client.get(_path(pr.id))
    assert resp.status_code == 200
    assert "Test Shop" in resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "strict-origin"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_expired_link_is_410_with_the_merchants_contact(client, merchant):
    merchant.merchant.support_email = "help@shop.example"
    expired = make_request(merchant)
    expired.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    resp = client.get(f"/p/{link_token(expired.id)}")
    assert resp.status_code == 410
    assert "help@shop.example" in resp.text
    assert resp.headers["Cache-Control"] == "no-store"


def test_bad_tokens_get_the_same_404(client, merchant):
    pr = make_request(merchant)
    good = link_token(pr.id)
    body_id, sig = good.split(".")
    pages = []
    for token in [
        f"{body_id}.{sig[:-2]}xx",  # tampered signature
        f"pr_AAAAAAAAAAAAAAAAAAAAAA.{sig}",  # another id with this signature
        link_token("pr_unknown0000000000000000"),  # well signed, unknown
        "garbage",
        "x" * 500,
    ]:
        resp = client.get(f"/p/{token}")
        assert resp.status_code == 404, token
        assert resp.headers["Cache-Control"] == "no-store"
        pages.append(resp.text)
    assert len(set(pages)) == 1


def test_key_rotation_old_links_keep_working(app, merchant):
    pr = make_request(merchant)
    old_token = link_token(pr.id)
    rotated = create_app(
        {
            "env": "test",
            "database_url": app.config["SQLALCHEMY_DATABASE_URI"],
            "secret_keys": ["a-brand-new-key-0123456789abcdefghijkl", TEST_SECRET],
        }
    )
    with rotated.app_context():
        assert request_id_from_token(old_token) == pr.id
        new_token = link_token(pr.id)
        assert new_token != old_token
    # the old app does not know the new key
    assert request_id_from_token(new_token) is None


def test_token_of_another_purpose_is_refused(app):
    from portal.links import sign

    assert request_id_from_token(sign("pr_x", "some-other-purpose")) is None
