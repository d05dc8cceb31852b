"""A newcomer after ``make run``, in Chromium: the start page, a demo link, the mail
viewer with the message's HTML in its sandboxed frame, and the API reference with a call
made from it, on a phone and a desktop, and not one policy violation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from portal.demo import DEMO_API_KEY
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.notifications.mail import send_mail
from tests.functional.devtools.conftest import make_dev_app
from tests.servers import serve_wsgi

pytestmark = pytest.mark.e2e

# Reported to the page's console by the listener every page gets before its own scripts.
WATCH = (
    "document.addEventListener('securitypolicyviolation', e => console.error("
    "'CSP violation: ' + e.effectiveDirective + ' ' + e.blockedURI));"
)

# Elements that reach past the right edge of the viewport (a phone must not scroll sideways).
OVERFLOWING = """width => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > width)
  .map(e => e.tagName + '.' + e.className + ': ' + (e.textContent || '').trim().slice(0, 50))"""


@pytest.fixture
def dev_server(tmp_path) -> Iterator[tuple[str, object]]:
    """The portal as ``make run`` serves it (development), on a free loopback port."""
    app = make_dev_app(f"sqlite:///{tmp_path / 'dev.db'}", tmp_path)
    with app.app_context():
        db.create_all()
    with serve_wsgi(app) as base:
        app.config["PORTAL_BASE_URL"] = base
        with app.app_context():
            result = app.test_cli_runner().invoke(args=["demo"])
            assert result.exit_code == 0, result.output
        yield base, app
    with app.app_context():
        db.engine.dispose()


def _page(browser, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.add_init_script(WATCH)
    return page, problems


def _blocked(problems: list[str]) -> list[str]:
    """The sandbox refusing a mail's script: what it is there for."""
    return [p for p in problems if p.startswith("Blocked script execution") and "/html'" in p]


def _real(problems: list[str]) -> list[str]:
    """Console errors but the browser's own request for /favicon.ico and the sandbox's."""
    expected = _blocked(problems)
    return [p for p in problems if p not in expected and "404 (NOT FOUND)" not in p]


@pytest.mark.parametrize("width", [390, 1280])
def test_a_newcomer_finds_the_links_the_mail_and_the_reference(dev_server, browser, shot, width):
    base, app = dev_server
    with app.app_context():
        created = app.test_client().post(
            "/api/v1/payment-requests",
            json={"kind": "statement", "currency": "EUR", "amount": 4200, "send": ["email"],
                  "customer": {"name": "Lotte", "email": "lotte@example.com", "locale": "nl"}},
            headers={"Authorization": f"Bearer {DEMO_API_KEY}"},
        )  # fmt: skip
        assert created.status_code == 201, created.json
        run_due_jobs()
        # a message whose HTML tries to run a script: the frame must not let it
        send_mail("jan@example.com", "Scripted", "Text.", "<p id=x>inert</p><script>"
                  "document.getElementById('x').textContent='ran'</script>")  # fmt: skip
    page, problems = _page(browser, width)
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="The portal is running")).to_be_visible()
    expect(page.get_by_text(DEMO_API_KEY).first).to_be_visible()
    wider = page.evaluate(OVERFLOWING, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wider
    shot(page, "start")

    # a demo link, as the customer sees it
    page.locator("#links a[href*='/p/']").first.click()
    expect(page.locator("h1").first).to_be_visible()
    assert "/p/" in page.url
    page.go_back()

    # the mail the API sent, its HTML in the sandboxed frame
    page.get_by_role("link", name="Mail", exact=True).click()
    page.get_by_role("link", name="Corner Shop: uw betaling van € 42,00").click()
    frame = page.frame_locator("iframe.mail")
    expect(frame.get_by_text("Nu betalen")).to_be_visible()
    expect(page.locator("pre.mail-text")).to_contain_text("Te betalen bedrag")
    shot(page, "message")
    page.get_by_role("link", name="All mail").click()
    page.get_by_role("link", name="Scripted").click()
    expect(page.frame_locator("iframe.mail").locator("#x")).to_have_text("inert")
    assert _blocked(problems), "the browser reports the mail's script as blocked"

    # the API reference, and one call from it with the demo key
    page.get_by_role("link", name="API reference").click()
    expect(page.locator(".opblock").first).to_be_visible(timeout=60_000)
    assert page.locator(".opblock").count() >= 10
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".modal-ux input").first.fill(DEMO_API_KEY)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    operation = page.locator(".opblock-get").filter(has_text="List payment requests").first
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200", timeout=60_000)
    expect(operation.locator(".live-responses-table")).to_contain_text("DEMO-STATEMENT")
    shot(page, "api-reference")
    assert _real(problems) == [], problems
    page.close()
