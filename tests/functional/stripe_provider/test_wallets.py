"""Apple Pay and Google Pay: the portal's domain registered as a payment method domain
on the platform and on each connected account (the SDK's requests recorded at the HTTP
boundary), and Apple's domain association file served from configuration."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from portal.extensions import db
from portal.merchants.models import Merchant
from tests.factories import make_merchant
from tests.servers import HTTPRecorder, json_response


def _domain(req):
    form = parse_qs(req.body.decode())
    return {
        "id": f"pmd_{len(form['domain_name'][0])}",
        "object": "payment_method_domain",
        "domain_name": form["domain_name"][0],
        "enabled": True,
    }


def test_the_domain_is_registered_on_the_platform_and_every_connected_account(app):
    app.config.update(PORTAL_PAYMENT_PROVIDER="stripe", PORTAL_STRIPE_SECRET_KEY="sk_test_x")
    connected = make_merchant(name="Connected")
    db.session.get(Merchant, connected.id).stripe_account = "acct_connected1"
    make_merchant(name="Platform only")
    db.session.commit()
    recorder = HTTPRecorder(lambda req: json_response(200, _domain(req))).start()
    try:
        app.config["PORTAL_STRIPE_API_BASE"] = recorder.url
        args = ["wallet-domains", "--domain", "pay.example.com"]
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0, result.output
        platform, account = recorder.requests
    finally:
        recorder.stop()
    for req in (platform, account):
        assert req.method == "POST" and req.path == "/v1/payment_method_domains"
        sent = parse_qs(req.body.decode())
        assert sent == {"domain_name": ["pay.example.com"], "enabled": ["true"]}
    assert "Stripe-Account" not in platform.headers
    assert platform.headers["Idempotency-Key"] == "portal-pmd-platform-pay.example.com"
    assert account.headers["Stripe-Account"] == "acct_connected1"
    assert account.headers["Idempotency-Key"] == "portal-pmd-acct_connected1-pay.example.com"
    out = json.loads(result.output)
    assert out["domain"] == "pay.example.com"
    assert [r["account"] for r in out["registered"]] == [None, "acct_connected1"]


def test_the_default_domain_is_the_portals_and_the_sandbox_registers_nothing(app):
    result = app.test_cli_runner().invoke(args=["wallet-domains"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out == {"domain": "portal.test", "registered": [{"account": None, "id": None}]}


def test_apples_domain_association_file_is_served_from_configuration(app, client, tmp_path):
    path = "/.well-known/apple-developer-merchantid-domain-association"
    assert client.get(path).status_code == 404  # not configured: nothing to show
    app.config["PORTAL_APPLE_PAY_DOMAIN_ASSOCIATION"] = "7B227073704964223A2233"
    resp = client.get(path)
    assert resp.status_code == 200 and resp.data == b"7B227073704964223A2233"
    assert resp.mimetype == "text/plain"
    stored = tmp_path / "association"
    stored.write_bytes(b"FROM-A-FILE\n")
    app.config["PORTAL_APPLE_PAY_DOMAIN_ASSOCIATION"] = f"@{stored}"
    assert client.get(path).data == b"FROM-A-FILE\n"
