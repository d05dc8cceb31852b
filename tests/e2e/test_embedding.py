"""Paying inside a merchant's iframe, across two https sites, in Chromium: the shop's
page (https://shop.test) loads embed.js from the portal (https://127.0.0.1), the
customer pays through the sandbox's 3-D Secure step inside the frame, the frame
grows to its content and the shop's page hears "paid". Chromium runs with its
third-party-cookie phase-out flag, as Safari and tracking protection behave: the
frame's forms need no cookie of ours."""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import expect, sync_playwright

from portal.extensions import db
from portal.links import link_url
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from tests.conftest import make_app
from tests.e2e.conftest import CHROMIUM_ARGS, chromium_path
from tests.factories import make_merchant, make_request, statement_body
from tests.servers import serve_wsgi

pytestmark = pytest.mark.e2e
SHOP_HOST = "shop.test"


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1",
         "-addext", f"subjectAltName=IP:127.0.0.1,DNS:{SHOP_HOST}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def _shop_app(pages: dict[str, str]):
    """The merchant's own site: one page per path, each embedding a portal link."""

    def app(environ, start_response):
        body = pages.get(environ["PATH_INFO"])
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body.encode()]

    return app


def _shop_page(portal: str, link: str, mode: str = "inline") -> str:
    return f"""<!doctype html><html lang="en"><title>Corner Shop</title>
<h1>Corner Shop checkout</h1>
<div id="pay" data-portal-link="{link}" data-portal-mode="{mode}" data-portal-label="Pay now"></div>
<p id="status">waiting</p>
<script>
document.addEventListener("portal:paid", function (event) {{
  var d = event.detail;
  document.getElementById("status").textContent =
    "paid " + d.amount + " " + d.currency + " " + d.status;
}});
</script>
<script src="{portal}/static/embed.js"></script>
</html>"""


@pytest.fixture
def two_sites(tmp_path, certificate):
    app = make_app(f"sqlite:///{tmp_path / 'embed.db'}")
    with app.app_context():
        db.create_all()
    pages: dict[str, str] = {}
    with (
        serve_wsgi(app, ssl_context=certificate) as portal,
        serve_wsgi(_shop_app(pages), ssl_context=certificate) as shop_on_loopback,
    ):
        app.config["PORTAL_BASE_URL"] = portal
        shop = shop_on_loopback.replace("127.0.0.1", SHOP_HOST)
        yield app, portal, shop, pages
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def browser_two_sites():
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {SHOP_HOST} 127.0.0.1",
            "--test-third-party-cookie-phaseout"]  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
        yield browser
        browser.close()


def _link(app, *, origins: list[str], reference: str) -> tuple[str, str]:
    with app.app_context():
        merchant = make_merchant(name=f"Corner Shop {reference}")
        db.session.get(Merchant, merchant.id).embed_origins = origins
        db.session.commit()
        body = statement_body(reference=reference)
        body["customer"]["locale"] = "en"
        pr = make_request(merchant, body)
        return link_url(pr.id), pr.id


def test_paying_inside_a_frame_on_another_https_site(two_sites, browser_two_sites):
    app, portal, shop, pages = two_sites
    url, pr_id = _link(app, origins=[shop], reference="EMBED-1")
    pages["/checkout"] = _shop_page(portal, url)
    context = browser_two_sites.new_context(ignore_https_errors=True, locale="en-GB")
    page = context.new_page()
    page.goto(f"{shop}/checkout")
    frame = page.frame_locator("#pay iframe")
    expect(frame.get_by_role("heading", name="Account statement")).to_be_visible()
    iframe = page.locator("#pay iframe")
    expect(iframe).to_have_attribute("style", re.compile(r"height: \d+px"))  # resized
    frame.get_by_role("button", name="Continue to payment").click()
    frame.get_by_label("Card number").fill("4000 0027 6000 3184")  # asks for 3-D Secure
    frame.get_by_label("Expiry").fill("12/39")
    frame.get_by_label("CVC").fill("123")
    frame.get_by_role("button", name=re.compile("^Pay")).click()
    expect(frame.get_by_role("heading", name="Confirm with your bank")).to_be_visible()
    frame.get_by_role("button", name="Approve").click()
    expect(frame.get_by_role("heading", name=re.compile("Payment received"))).to_be_visible()
    expect(page.locator("#status")).to_have_text("paid 12500 EUR paid")
    context.close()
    with app.app_context():
        assert db.session.get(PaymentRequest, pr_id).status == "paid"


def test_the_button_opens_the_frame_in_a_dialog(two_sites, browser_two_sites):
    app, portal, shop, pages = two_sites
    url, _ = _link(app, origins=[shop], reference="EMBED-2")
    pages["/button"] = _shop_page(portal, url, mode="button")
    context = browser_two_sites.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(f"{shop}/button")
    page.get_by_role("button", name="Pay now").click()
    frame = page.frame_locator("dialog iframe")
    expect(frame.get_by_role("button", name="Continue to payment")).to_be_visible()
    context.close()


def test_a_shop_that_is_not_listed_cannot_frame_the_page(two_sites, browser_two_sites):
    app, portal, shop, pages = two_sites
    url, _ = _link(app, origins=["https://elsewhere.example"], reference="EMBED-3")
    pages["/stolen"] = _shop_page(portal, url)
    context = browser_two_sites.new_context(ignore_https_errors=True)
    page = context.new_page()
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text):
        page.goto(f"{shop}/stolen")
    expect(page.frame_locator("#pay iframe").get_by_role("button")).to_have_count(0)
    assert page.locator("#status").text_content() == "waiting"
    context.close()
