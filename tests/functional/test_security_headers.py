"""Security headers on every kind of response, and the CSP report endpoint."""

from __future__ import annotations

import json
import logging

import pytest

from portal.api.reference import VIEWER
from portal.extensions import db
from portal.links import link_token
from tests.conftest import BASE_URL, _empty, make_app
from tests.factories import make_request


def _directives(csp: str) -> dict[str, str]:
    return {
        part.strip().split(" ", 1)[0]: [*part.strip().split(" ", 1), ""][1]
        for part in csp.split(";")
        if part.strip()
    }


def _responses(client, merchant):
    pr = make_request(merchant)
    token = link_token(pr.id)
    static = client.get("/static/css/portal.css")
    static.close()
    return {
        "static": static,
        "link page": client.get(f"/p/{token}"),
        "unknown link": client.get("/p/pr_nothing.forged"),
        "qr code": client.get(f"/p/{token}/qr.svg"),
        "api": client.get("/api/v1/payment-requests", headers=merchant.headers),
        "api error": client.get("/api/v1/payment-requests"),
        "console": client.get("/support/login"),
        "health": client.get("/healthz"),
        "api reference": client.get("/docs/api"),
        "vendored viewer": _closed(client.get(f"/static/{VIEWER}/swagger-ui.css")),
    }


def _closed(resp):
    resp.close()
    return resp


def test_every_response_carries_the_security_headers(client, merchant):
    for name, resp in _responses(client, merchant).items():
        headers = resp.headers
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Referrer-Policy"] in ("strict-origin", "no-referrer"), name
        assert "camera=()" in headers["Permissions-Policy"], name
        assert 'payment=(self "https://js.stripe.com")' in headers["Permissions-Policy"], name
        hsts = headers["Strict-Transport-Security"]  # the test base URL is https
        assert int(hsts.split("max-age=")[1].split(";")[0]) >= 365 * 86400, name
        csp = _directives(headers["Content-Security-Policy"])
        assert csp["default-src"] == "'self'", name
        assert csp["object-src"] == "'none'", name
        assert csp["base-uri"] == "'none'", name
        assert csp["form-action"] == "'self'", name
        assert csp["frame-ancestors"] == "'none'", name
        assert csp["report-uri"] == "/csp-report" and csp["report-to"] == "csp", name
        assert "unsafe-inline" not in headers["Content-Security-Policy"], name
        assert "stripe" not in csp["script-src"], name
        assert headers["Reporting-Endpoints"] == 'csp="https://portal.test/csp-report"', name
        assert len(headers["X-Request-Id"]) >= 8, name


def test_the_development_tools_carry_the_same_headers(tmp_path):
    """The start page, the mail viewer and the SMS log (PORTAL_ENV=development) keep the
    portal's policy; a mail's HTML part has a stricter one of its own (no script at all,
    a sandboxed document, framed by us only)."""
    from portal.devtools.views import MAIL_HTML_POLICY
    from tests.functional.devtools.conftest import tool_pages

    with tool_pages(tmp_path, base_url=BASE_URL) as (pages, part):
        for page, resp in pages.items():
            assert resp.status_code == 200, page
            csp = _directives(resp.headers["Content-Security-Policy"])
            assert csp["default-src"] == "'self'" and csp["object-src"] == "'none'", page
            assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'", page
            assert csp["script-src"].startswith("'self'") and "unsafe" not in csp["script-src"], (
                page
            )
            assert "unsafe-inline" not in resp.headers["Content-Security-Policy"], page
            assert resp.headers["X-Content-Type-Options"] == "nosniff", page
            assert resp.headers["Referrer-Policy"] == "strict-origin", page
            assert "camera=()" in resp.headers["Permissions-Policy"], page
            assert resp.headers["Strict-Transport-Security"], page
        assert part.status_code == 200
        assert part.headers["Content-Security-Policy"] == MAIL_HTML_POLICY
        policy = _directives(MAIL_HTML_POLICY)
        assert policy["default-src"] == "'none'" and "script-src" not in policy
        assert "sandbox" in policy and policy["frame-ancestors"] == "'self'"
        assert part.headers["X-Content-Type-Options"] == "nosniff"
        assert part.headers["Strict-Transport-Security"]


def test_no_hsts_on_a_plain_http_development_server(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'p.db'}", base_url="http://127.0.0.1:5000")
    resp = app.test_client().get("/healthz")
    assert "Strict-Transport-Security" not in resp.headers
    assert (
        app.test_client()
        .get("/healthz", base_url="https://x.test")
        .headers["Strict-Transport-Security"]
    )


def test_merchant_embedding_origins_widen_frame_ancestors_on_its_links_only(client, merchant):
    merchant.merchant.embed_origins = ["https://shop.example.be"]
    db.session.commit()
    page = client.get(f"/p/{link_token(make_request(merchant).id)}")
    assert _directives(page.headers["Content-Security-Policy"])["frame-ancestors"] == (
        "https://shop.example.be"
    )
    other = client.get("/support/login")
    assert _directives(other.headers["Content-Security-Policy"])["frame-ancestors"] == "'none'"


def test_request_id_is_echoed_when_sane_and_replaced_when_not(client):
    assert (
        client.get("/healthz", headers={"X-Request-Id": "req-1234abcd"}).headers["X-Request-Id"]
        == "req-1234abcd"
    )
    fresh = client.get("/healthz", headers={"X-Request-Id": "bad id <script>"})
    assert fresh.headers["X-Request-Id"] != "bad id" and "<" not in fresh.headers["X-Request-Id"]


def test_csp_report_uri_format_is_logged_masked(client, caplog):
    report = {
        "csp-report": {
            "document-uri": "https://portal.test/p/pr_abc123.SIGNATUREsecret",
            "violated-directive": "script-src-elem",
            "effective-directive": "script-src-elem",
            "blocked-uri": "https://evil.example/skimmer.js",
            "source-file": "https://portal.test/p/pr_abc123.SIGNATUREsecret",
            "line-number": 12,
        }
    }
    with caplog.at_level(logging.WARNING, logger="portal.csp"):
        resp = client.post(
            "/csp-report", data=json.dumps(report), content_type="application/csp-report"
        )
    assert resp.status_code == 204
    lines = [r for r in caplog.records if r.name == "portal.csp"]
    assert len(lines) == 1
    # caplog sees the record before the handler's filter: check through the filter
    from portal.logs import MaskSecrets

    MaskSecrets().filter(lines[0])
    message = lines[0].getMessage()
    assert "evil.example/skimmer.js" in message and "script-src-elem" in message
    assert "SIGNATUREsecret" not in message and "pr_abc123" in message


def test_csp_reporting_api_format_is_accepted(client, caplog):
    reports = [
        {"type": "csp-violation", "body": {"documentURL": "https://portal.test/support/",
                                           "effectiveDirective": "img-src",
                                           "blockedURL": "http://tracker.example/p.gif"}},
        {"type": "deprecation", "body": {"id": "x"}},
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="portal.csp"):
        resp = client.post(
            "/csp-report", data=json.dumps(reports), content_type="application/reports+json"
        )
    assert resp.status_code == 204
    assert [r.getMessage() for r in caplog.records if r.name == "portal.csp"] == [
        'csp violation {"blocked": "http://tracker.example/p.gif", "directive": "img-src", '
        '"document": "https://portal.test/support/"}'
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 400), (b"{}", 400), (b"[]", 400), (b"x" * (65 * 1024), 413)],
)
def test_csp_report_refuses_garbage_without_a_500(client, body, status):
    resp = client.post("/csp-report", data=body, content_type="application/csp-report")
    assert resp.status_code == status


def test_csp_report_needs_no_csrf_token_and_refuses_get(client):
    # WTF_CSRF_ENABLED is on in these apps: a browser report carries no token
    ok = client.post(
        "/csp-report",
        data=json.dumps({"csp-report": {"blocked-uri": "inline"}}),
        content_type="application/csp-report",
    )
    assert ok.status_code == 204
    assert client.get("/csp-report").status_code == 405


def test_csp_reports_are_rate_limited(database_url):
    app = make_app(database_url, RATELIMIT_ENABLED=True)
    client = app.test_client()
    ip = {"REMOTE_ADDR": f"10.40.0.{database_url.startswith('sqlite')}"}
    body = json.dumps({"csp-report": {"blocked-uri": "inline"}})
    statuses = [
        client.post(
            "/csp-report", data=body, content_type="application/csp-report", environ_base=ip
        ).status_code
        for _ in range(61)
    ]
    assert statuses[:60] == [204] * 60 and statuses[60] == 429
    _empty(app)


def test_405_says_what_is_allowed(client):
    page = client.get("/csp-report")
    allowed = {m.strip() for m in page.headers["Allow"].split(",")}
    assert page.status_code == 405 and allowed == {"OPTIONS", "POST"}
    api = client.get("/api/v1/events/evt_x/redeliver")
    assert api.status_code == 405 and "POST" in api.headers["Allow"]
    assert api.json["error"]["code"] == "method_not_allowed"
