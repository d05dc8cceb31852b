"""Security headers on every response, in one place, and the CSP report endpoint.

Views only *widen* the policy for what they load (``g.csp_script_src`` and friends
on the Stripe page, ``g.frame_ancestors`` for a merchant's embedding origins); the
defaults are the strict ones. docs/security.md lists every script a payment page
loads and why (PCI DSS v4 6.4.3); a test fails when a page loads one that is not
listed there.
"""

from __future__ import annotations

import json
import logging
import secrets

from flask import Blueprint, Flask, Response, current_app, g, request

from portal.extensions import csrf, limiter

log = logging.getLogger("portal.csp")
bp = Blueprint("security", __name__)

REPORT_PATH = "/csp-report"
REPORT_MAX_BYTES = 64 * 1024
# Only the Payment Request API (wallets in Stripe's Payment Element) is allowed, and
# only for us and Stripe.js; every sensor, camera and microphone is off.
PERMISSIONS_POLICY = (
    'payment=(self "https://js.stripe.com"), camera=(), microphone=(), geolocation=(), '
    "usb=(), serial=(), bluetooth=(), hid=(), midi=(), accelerometer=(), gyroscope=(), "
    "magnetometer=(), display-capture=(), browsing-topics=()"
)
# The browser sends only our origin as Referer, never a path: a link token never
# leaves in a Referer (not even to us), and Flask-WTF's https Referer check, which
# compares origins only, still passes.
REFERRER_POLICY = "strict-origin"
HSTS = "max-age=63072000; includeSubDomains"


def csp_nonce() -> str:
    """A per-response nonce for the few ``<script>`` and ``<style>`` tags pages load."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def content_security_policy() -> str:
    ancestors = g.get("frame_ancestors") or "'none'"
    nonce = f" 'nonce-{g.csp_nonce}'" if "csp_nonce" in g else ""
    return (
        "default-src 'self'; "
        f"script-src 'self'{nonce}{g.get('csp_script_src', '')}; "
        f"style-src 'self'{nonce}; img-src 'self' data: https:; "
        f"connect-src 'self'{g.get('csp_connect_src', '')}; "
        f"frame-src 'self'{g.get('csp_frame_src', '')}; "
        f"frame-ancestors {ancestors}; "
        f"form-action 'self'{g.get('csp_form_action', '')}; "
        "base-uri 'none'; object-src 'none'; "
        f"report-uri {REPORT_PATH}; report-to csp"
    )


WIDENINGS = ("csp_nonce", "csp_script_src", "csp_connect_src", "csp_frame_src",
             "csp_form_action", "frame_ancestors")  # fmt: skip


def _fresh_policy() -> None:
    """Each request starts from the strict policy, even when an app context is reused."""
    for name in WIDENINGS:
        g.pop(name, None)


def _headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", REFERRER_POLICY)
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = content_security_policy()
        base = current_app.config["PORTAL_BASE_URL"]
        headers["Reporting-Endpoints"] = f'csp="{base}{REPORT_PATH}"'
    if request.is_secure or current_app.config["PORTAL_BASE_URL"].startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _reports(body: object) -> list[dict[str, object]]:
    """Violations from either format: report-uri's ``{"csp-report": …}`` or the
    Reporting API's ``[{"type": "csp-violation", "body": …}]``."""
    if isinstance(body, dict) and isinstance(body.get("csp-report"), dict):
        return [body["csp-report"]]
    if isinstance(body, list):
        return [
            item["body"]
            for item in body
            if isinstance(item, dict)
            and item.get("type") == "csp-violation"
            and isinstance(item.get("body"), dict)
        ]
    return []


FIELDS = (
    ("document", ("document-uri", "documentURL")),
    ("directive", ("effective-directive", "effectiveDirective", "violated-directive")),
    ("blocked", ("blocked-uri", "blockedURL")),
    ("source", ("source-file", "sourceFile")),
    ("line", ("line-number", "lineNumber")),
    ("disposition", ("disposition",)),
)


@bp.post(REPORT_PATH)
@csrf.exempt
@limiter.limit("60 per minute")
def csp_report() -> tuple[str, int]:
    """Browsers post violations here; each is logged (tokens masked by the log filter)."""
    if (request.content_length or 0) > REPORT_MAX_BYTES:
        return "", 413
    try:
        body = json.loads(request.get_data(cache=False)[:REPORT_MAX_BYTES] or b"null")
    except ValueError:
        return "", 400
    reports = _reports(body)
    if not reports:
        return "", 400
    for report in reports[:20]:
        summary = {}
        for name, keys in FIELDS:
            value = next((report[k] for k in keys if report.get(k) not in (None, "")), None)
            if value is not None:
                summary[name] = str(value)[:300]
        log.warning("csp violation %s", json.dumps(summary, sort_keys=True))
    return "", 204


def init_app(app: Flask) -> None:
    app.before_request(_fresh_policy)
    app.after_request(_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.register_blueprint(bp)
