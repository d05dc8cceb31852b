"""Over https, in Chromium: our Referrer-Policy sends only our origin, so the link's
token never leaves in a Referer and Flask-WTF's strict https check passes."""

from __future__ import annotations

import re
import subprocess

import pytest
from flask import request
from playwright.sync_api import expect

from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from tests.conftest import make_app
from tests.e2e.conftest import new_link
from tests.factories import statement_body
from tests.servers import serve_wsgi

pytestmark = pytest.mark.e2e


@pytest.fixture
def https_server(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    app = make_app(f"sqlite:///{tmp_path / 'https.db'}")
    assert app.config["WTF_CSRF_SSL_STRICT"] is True
    with app.app_context():
        db.create_all()
    referers: list[tuple[str, str | None]] = []

    @app.before_request
    def _record() -> None:
        referers.append((request.method, request.headers.get("Referer")))

    with serve_wsgi(app, ssl_context=(str(cert), str(key))) as base:
        app.config["PORTAL_BASE_URL"] = base
        yield base, app, referers
    with app.app_context():
        db.engine.dispose()


def test_paying_over_https_sends_only_our_origin_as_referer(https_server, browser):
    base, app, referers = https_server
    url, pr_id = new_link(app, statement_body(), merchant="Shop over TLS", locale="en")
    token = url.rsplit("/p/", 1)[1]
    context = browser.new_context(ignore_https_errors=True, locale="en-GB")
    page = context.new_page()
    page.goto(url)
    page.get_by_role("button", name="Continue to payment").click()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry").fill("12/39")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name=re.compile("^Pay")).click()
    expect(page.get_by_role("heading", name=re.compile("Payment received"))).to_be_visible()
    context.close()
    with app.app_context():
        assert db.session.get(PaymentRequest, pr_id).status == "paid"
    posts = [ref for method, ref in referers if method == "POST"]
    assert len(posts) == 2  # the pay form and the card form, both accepted
    assert posts == [f"{base}/"] * 2
    assert all(token not in (ref or "") for _, ref in referers)
