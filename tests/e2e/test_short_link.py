"""A link SMS's short link (``/s/<code>``) opens the request's page in Chromium."""

from __future__ import annotations

from playwright.sync_api import expect

from portal.delivery.shortlinks import short_code
from portal.extensions import db
from portal.links import link_token
from tests.factories import make_merchant, make_request, statement_body


def test_the_short_link_of_an_sms_opens_the_page(live_server, browser):
    base, app = live_server
    with app.app_context():
        body = statement_body()
        body["customer"]["locale"] = "de"
        pr = make_request(make_merchant(name="Bäckerei Müller"), body)
        code, token = short_code(pr.id), link_token(pr.id)
        db.session.commit()
    page = browser.new_page(locale="de-DE")
    page.goto(f"{base}/s/{code}")
    assert page.url.startswith(f"{base}/p/{token}")
    expect(page.get_by_text("Bäckerei Müller").first).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "de"
    forged = page.goto(f"{base}/s/{code[:-1]}{'y' if code[-1] == 'x' else 'x'}")
    assert forged is not None and forged.status == 404
    expect(page.get_by_role("heading", name="Dieser Link ist nicht verfügbar")).to_be_visible()
