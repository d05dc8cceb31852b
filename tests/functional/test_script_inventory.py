"""PCI DSS 6.4.3: every script a page loads is in docs/security.md's inventory."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from portal.api.reference import INTEGRITY, VIEWER
from portal.extensions import db
from portal.links import link_token
from tests.factories import (
    deposit_body,
    make_merchant,
    make_request,
    statement_body,
    wallet_body,
)
from tests.functional.script_inventory import DOC, ROOT, inventory, scripts_of

VIEWER_JS = f"/static/{VIEWER}/swagger-ui-bundle.js"

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(resp) -> str:
    return CSRF.search(resp.text).group(1)


def _customer_pages(client, merchant) -> dict[str, object]:
    pages = {}
    for name, body in (
        ("statement", statement_body(allow_partial=True)),
        ("wallet", wallet_body()),
        ("deposit", deposit_body()),
    ):
        pr = make_request(merchant, body)
        pages[f"{name} link"] = client.get(f"/p/{link_token(pr.id)}")
    pr = make_request(merchant)
    base = f"/p/{link_token(pr.id)}"
    opened = client.get(base)
    started = client.post(f"{base}/pay", data={"csrf_token": _csrf(opened)})
    checkout = client.get(started.headers["Location"])
    pages["sandbox card page"] = checkout
    pages["card form with errors"] = client.post(
        started.headers["Location"], data={"csrf_token": _csrf(checkout), "card_number": "1"}
    )
    three_ds = client.post(
        started.headers["Location"],
        data={"csrf_token": _csrf(checkout), "card_number": "4000 0027 6000 3184",
              "expiry": "12/39", "cvc": "123"},
    )  # fmt: skip
    pages["3-D Secure page"] = step = client.get(three_ds.headers["Location"])
    done = client.post(
        three_ds.headers["Location"], data={"csrf_token": _csrf(step), "decision": "approve"}
    )
    pages["result page"] = result = client.get(done.headers["Location"])
    receipt = re.search(r'href="([^"]*/receipt/[^"]+)"', result.text)
    assert receipt, "the result page links to the receipt"
    pages["receipt"] = client.get(receipt.group(1))
    pages["paid link"] = client.get(base)
    void = make_request(merchant)
    void.status = "void"
    db.session.commit()
    pages["void link"] = client.get(f"/p/{link_token(void.id)}")
    pages["unknown link"] = client.get("/p/pr_nothing.forged")
    return pages


def _check(pages: dict[str, object], stripe_js_url: str) -> set[str]:
    scripts, blocks = inventory()
    seen = set()
    for name, resp in pages.items():
        assert resp.status_code in (200, 404, 410, 422), (name, resp.status_code)
        for script in scripts_of(resp.text, stripe_js_url):
            assert not script.startswith("inline:"), f"{name}: {script} (CSP forbids it)"
            assert script in scripts | blocks, (
                f"{name} loads {script!r}, which is not in docs/security.md's inventory"
            )
            seen.add(script)
    return seen


def test_customer_pages_load_only_inventoried_scripts(app, client, merchant):
    seen = _check(_customer_pages(client, merchant), app.config["PORTAL_STRIPE_JS_URL"])
    assert "/static/js/print.js" in seen  # the receipt's button: proves the crawl sees scripts


def test_console_loads_no_script(app):
    from tests.functional.support.test_console import https_client, login, staff

    client = https_client(app)
    merchant_pr = make_request(make_merchant())
    user = staff("admin")
    assert login(client, user).status_code == 303
    pages = {
        "login": client.get("/support/login"),
        "dashboard": client.get("/support/"),
        "search": client.get(f"/support/search?q={merchant_pr.id}"),
        "request": client.get(f"/support/requests/{merchant_pr.id}"),
        "audit": client.get("/support/audit"),
    }
    assert _check(pages, app.config["PORTAL_STRIPE_JS_URL"]) == set()


def test_the_api_reference_loads_only_inventoried_scripts_with_their_hashes(app, client):
    page = client.get("/docs/api")
    assert page.status_code == 200
    seen = _check({"API reference": page}, app.config["PORTAL_STRIPE_JS_URL"])
    assert seen == {VIEWER_JS, "/static/js/api-reference.js"}
    # Subresource Integrity: the page asks the browser to check the hash of each vendored
    # file, the hashes are those of the files, and docs/security.md shows the same.
    doc = DOC.read_text(encoding="utf-8")
    for name, integrity in INTEGRITY.items():
        path = ROOT / "static" / VIEWER / name
        digest = base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()
        assert integrity == f"sha384-{digest}", f"{name} changed: update INTEGRITY and the doc"
        assert re.search(rf'/{re.escape(name)}"[^>]*integrity="{re.escape(integrity)}"', page.text)
        assert integrity in doc, f"docs/security.md does not show {name}'s hash"
    assert (ROOT / "static" / VIEWER / "LICENSE").exists()


def test_the_development_tools_load_no_script(tmp_path):
    from tests.functional.devtools.conftest import tool_pages

    with tool_pages(tmp_path) as (pages, _):
        del pages["api reference"]  # above
        assert _check(pages, "https://js.stripe.com/v3/") == set()


def test_every_static_script_is_in_the_inventory():
    scripts, _ = inventory()
    static = ROOT / "static"
    files = {f"/static/{p.relative_to(static).as_posix()}" for p in static.rglob("*.js")}
    assert "/static/js/print.js" in files and VIEWER_JS in files, "the walk sees static/"
    assert files <= scripts, f"not in docs/security.md: {sorted(files - scripts)}"
    ours = {s for s in scripts if s.startswith("/static/")}
    assert ours <= files, f"listed but gone: {sorted(ours - files)}"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<script src="/static/js/a.js?v=1" nonce="n"></script>', ["/static/js/a.js"]),
        ('<script type="application/json" id="cfg">{}</script>', ["#cfg"]),
        ("<script>alert(1)</script>", ["inline: <script>"]),
        ('<button onclick="pay()">', ["inline: onclick"]),
        ('<script src="https://cdn.example/x.js"></script>', ["https://cdn.example/x.js"]),
    ],
)
def test_the_crawler_sees_every_kind_of_script(html, expected):
    assert scripts_of(html, "https://js.stripe.com/v3/") == expected
