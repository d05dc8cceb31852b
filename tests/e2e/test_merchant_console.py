"""A shop owner in Chromium at phone width (issue 15, "Done when", as far as built): invited
by e-mail (real SMTP), sets a password and TOTP, creates a French statement with three
lines by hand, previews it, sends it by e-mail; the customer pays it; the owner sees it
paid, refunds part of it, exports the CSV, and the numbers match the events API."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.merchant_console.accounts import invite_user
from tests.factories import make_merchant
from tests.servers import SMTPRecorder

pytestmark = pytest.mark.e2e

PASSWORD = "a long owner password"
PHONE = {"width": 390, "height": 844}
LINK = re.compile(r"http://127\.0\.0\.1:\d+/\S+")


WIDER = """() => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .map(e => e.tagName + "#" + e.id + "." + e.className).slice(0, 5)"""


def _no_horizontal_scroll(page) -> None:
    # A page whose text is visible may still wait for its stylesheets; measured before
    # they apply, the unstyled navigation is wider than the phone.
    page.wait_for_load_state("load")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert fits, (page.url, widths, page.evaluate(WIDER))


def _last_link(smtp) -> str:
    return LINK.search(smtp.messages[-1].get_body(("plain",)).get_content()).group(0)


def test_owner_journey_from_invitation_to_export(live_server, browser, shot):
    base, app = live_server
    smtp = SMTPRecorder().start()
    app.config["PORTAL_MAIL_URL"] = smtp.url
    try:
        with app.app_context():
            m = make_merchant(name="Boulangerie Lenoir")
            invite_user(m.merchant, "owner@lenoir.test", "owner")
            db.session.commit()
            run_due_jobs()
        owner = browser.new_page(viewport=PHONE)
        owner.goto(_last_link(smtp))
        _no_horizontal_scroll(owner)
        shot(owner, "invitation")
        owner.fill("#password", PASSWORD)
        owner.fill("#confirm", PASSWORD)
        secret = owner.locator("#totp-secret").inner_text()
        owner.fill("#code", pyotp.TOTP(secret).now())
        owner.get_by_role("button", name="Create my account").click()
        expect(
            owner.get_by_text("You are signed in to Boulangerie Lenoir as owner.")
        ).to_be_visible()
        _no_horizontal_scroll(owner)

        owner.get_by_role("link", name="Statement").click()
        due = (date.today() + timedelta(days=10)).isoformat()
        fields = {
            "#customer_name": "Camille Martin", "#customer_email": "camille@example.com",
            "#customer_reference": "CUST-7", "#reference": "RELEVE-11",
            "#period_start": "2026-10-01", "#period_end": "2026-10-31",
            "#balance": "40.00", "#amount": "40.00", "#due_date": due,
        }  # fmt: skip
        for i, (when, what, amount) in enumerate(
            (("2026-10-03", "Pain", "12.50"), ("2026-10-12", "Avoir", "-2.50"),
             ("2026-10-20", "Gâteau", "30.00"))
        ):  # fmt: skip
            fields |= {f"#line_date_{i}": when, f"#line_description_{i}": what,
                       f"#line_amount_{i}": amount}  # fmt: skip
        for selector, value in fields.items():
            owner.fill(selector, value)
        owner.select_option("#customer_locale", "fr")
        _no_horizontal_scroll(owner)
        shot(owner, "new-statement")
        owner.get_by_role("button", name="Create and preview").click()
        expect(owner.get_by_role("heading", name="RELEVE-11")).to_be_visible()
        request_url = owner.url

        owner.get_by_role("link", name="Preview as the customer sees it").click()
        expect(owner.get_by_role("heading", name="Relevé de compte")).to_be_visible()
        shot(owner, "preview")
        owner.get_by_role("link", name="Back to the request").click()

        owner.get_by_role("button", name="Send the link").click()
        expect(owner.get_by_text("The link is on its way.")).to_be_visible()
        with app.app_context():
            run_due_jobs()
        assert smtp.messages[-1]["To"] == "camille@example.com"
        customer_url = _last_link(smtp)

        customer = browser.new_page(locale="fr-BE", viewport=PHONE)
        customer.goto(customer_url)
        customer.get_by_role("button", name="Continuer vers le paiement").click()
        customer.get_by_label("Numéro de carte").fill("4242 4242 4242 4242")
        customer.get_by_label("Date d'expiration").fill("12/39")
        customer.get_by_label("Cryptogramme (CVC)").fill("123")
        customer.get_by_role("button", name=re.compile("^Payer")).click()
        expect(customer.get_by_role("heading", name="Paiement reçu — merci !")).to_be_visible()

        owner.goto(request_url)
        expect(owner.locator("dd.status")).to_have_text("Paid")  # in words, the console's language
        owner.get_by_label(re.compile("^Refund")).fill("10.00")
        owner.get_by_label("Why").first.fill("one cake returned")
        owner.get_by_role("button", name="Refund").click()
        expect(owner.get_by_text("The refund is on its way to the customer.")).to_be_visible()
        _no_horizontal_scroll(owner)
        shot(owner, "refunded")

        today = date.today().isoformat()
        owner.get_by_role("link", name="Export").click()
        expect(owner.get_by_role("heading", name="Export for your books")).to_be_visible()
        _no_horizontal_scroll(owner)
        exported = owner.request.get(f"{base}/merchant/reconciliation?since={today}&until={today}")
        assert exported.status == 200
        rows = list(csv.DictReader(io.StringIO(exported.text())))
        payments = sum(int(r["amount"]) for r in rows if r["record"] == "payment")
        refunds = sum(int(r["amount"]) for r in rows if r["record"] == "refund")
        assert (payments, refunds) == (4000, -1000)
        key = {"Authorization": f"Bearer {m.api_key}"}
        events = owner.request.get(f"{base}/api/v1/events?limit=500", headers=key).json()
        paid = sum(e["data"]["payment"]["amount"] for e in events["data"]
                   if e["type"] == "payment.succeeded")  # fmt: skip
        refunded = sum(e["data"]["refund"]["amount"] for e in events["data"]
                       if e["type"] == "payment.refunded")  # fmt: skip
        assert (paid, -refunded) == (payments, refunds)
    finally:
        smtp.stop()
