"""The customer's journey in headless Chromium: read in French or Dutch, pay, see the receipt."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.ledger.models import Event
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from tests.e2e.conftest import new_link
from tests.factories import statement_body, wallet_body

pytestmark = pytest.mark.e2e


def _fill_card(page, number: str, labels: tuple[str, str, str]) -> None:
    card, expiry, cvc = labels
    page.get_by_label(card).fill(number)
    page.get_by_label(expiry).fill("12/39")
    page.get_by_label(cvc).fill("123")


def test_statement_in_french_declined_then_paid(live_server, browser, shot):
    _base, app = live_server
    url, pr_id = new_link(app, statement_body(), merchant="Boulangerie Dupont", locale="fr")
    page = browser.new_page(locale="fr-BE")
    page.goto(url)
    assert page.locator("html").get_attribute("lang") == "fr"
    expect(page.get_by_role("heading", name="Relevé de compte")).to_be_visible()
    shot(page, "statement")
    page.get_by_role("button", name="Continuer vers le paiement").click()
    _fill_card(
        page, "4000 0000 0000 0002", ("Numéro de carte", "Date d'expiration", "Cryptogramme (CVC)")
    )
    page.get_by_role("button", name=re.compile("^Payer")).click()
    expect(page.get_by_role("heading", name="Le paiement n'a pas abouti")).to_be_visible()
    expect(page.get_by_text("Votre carte a été refusée")).to_be_visible()
    shot(page, "declined")
    page.get_by_role("link", name="Réessayer").click()
    page.get_by_role("button", name="Continuer vers le paiement").click()
    _fill_card(
        page, "4242 4242 4242 4242", ("Numéro de carte", "Date d'expiration", "Cryptogramme (CVC)")
    )
    page.get_by_role("button", name=re.compile("^Payer")).click()
    expect(page.get_by_role("heading", name="Paiement reçu — merci !")).to_be_visible()
    page.get_by_role("link", name="Voir votre reçu").click()
    expect(page.get_by_role("heading", name="Reçu")).to_be_visible()
    expect(page.get_by_text("Visa •••• 4242")).to_be_visible()
    shot(page, "receipt")
    with app.app_context():
        assert db.session.get(PaymentRequest, pr_id).status == "paid"


def test_wallet_topup_in_dutch(live_server, browser, shot):
    _base, app = live_server
    url, pr_id = new_link(app, wallet_body(), merchant="Frituur Jan", locale="nl")
    page = browser.new_page(locale="nl-BE")
    page.goto(url)
    expect(page.get_by_role("heading", name="Waardeer uw tegoed op")).to_be_visible()
    shot(page, "topup")
    page.get_by_role("button", name=re.compile("20,00")).click()
    _fill_card(
        page, "4242 4242 4242 4242", ("Kaartnummer", "Vervaldatum kaart", "Beveiligingscode (CVC)")
    )
    page.get_by_role("button", name=re.compile("betalen$")).click()
    expect(page.get_by_role("heading", name="Betaling ontvangen — dank u!")).to_be_visible()
    page.get_by_role("link", name="Uw betalingsbewijs bekijken").click()
    expect(page.get_by_role("heading", name="Betalingsbewijs")).to_be_visible()
    shot(page, "receipt")
    with app.app_context():
        pr = db.session.get(PaymentRequest, pr_id)
        assert pr.status == "paid" and pr.amount_paid == 2000


def test_language_switcher_is_remembered(live_server, browser):
    _base, app = live_server
    url, _ = new_link(app, statement_body())
    page = browser.new_page()
    page.goto(url)
    page.locator("details.languages summary").click()  # the compact menu opens
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Account statement")).to_be_visible()
    page.goto(url)
    assert page.locator("html").get_attribute("lang") == "en"


def test_enter_in_the_amount_field_pays_what_was_typed(live_server, browser):
    """On a top-up with suggested amounts, typing 30 and pressing Enter (a phone's "Go")
    checks out €30.00, never the first suggestion."""
    _base, app = live_server
    url, pr_id = new_link(app, wallet_body(), locale="en")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url)
    field = page.get_by_label(re.compile("^Or another amount"))
    field.fill("30")
    field.press("Enter")
    expect(page.get_by_role("heading", name="Pay €30.00")).to_be_visible()
    with app.app_context():
        (payment,) = db.session.query(Payment).filter_by(request_id=pr_id).all()
        assert payment.amount == 3000


def test_nonsense_in_the_amount_field_is_kept_marked_and_focused(live_server, browser):
    _base, app = live_server
    url, pr_id = new_link(app, wallet_body(), locale="en")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url)
    page.get_by_label(re.compile("^Or another amount")).fill("2 x 10")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_role("alert")).to_contain_text("between €5.00 and €500.00")
    field = page.locator("#amount")
    expect(field).to_have_value("2 x 10")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    with app.app_context():
        assert db.session.query(Payment).filter_by(request_id=pr_id).count() == 0


def test_a_double_click_on_pay_charges_once(live_server, browser):
    _base, app = live_server
    url, pr_id = new_link(app, statement_body(), locale="en")
    page = browser.new_page()
    page.goto(url)
    page.get_by_role("button", name="Continue to payment").click()
    _fill_card(page, "4242 4242 4242 4242", ("Card number", "Expiry", "CVC"))
    page.get_by_role("button", name=re.compile("^Pay ")).dblclick()
    expect(page.get_by_role("heading", name="Payment received — thank you!")).to_be_visible()
    with app.app_context():
        payments = db.session.query(Payment).filter_by(request_id=pr_id).all()
        assert [(p.status, p.applied) for p in payments] == [("succeeded", True)]
        events = db.session.query(Event).filter_by(request_id=pr_id).all()
        assert sorted(e.type for e in events) == ["payment.succeeded", "payment_request.paid"]


def test_a_phone_keeps_the_shop_name_on_one_line(live_server, browser):
    """At 390 px the language menu is compact: a long shop name keeps one line beside it,
    and buttons use the text's font."""
    _base, app = live_server
    url, _ = new_link(app, statement_body(), merchant="Corner Shop Dupont", locale="nl")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url)
    name = page.locator(".merchant-name")
    line_height = name.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
    assert name.bounding_box()["height"] < 1.5 * line_height  # one line, not wrapped
    menu = page.locator("details.languages")
    assert menu.bounding_box()["width"] < 80
    fonts = page.evaluate(
        """() => [getComputedStyle(document.body).fontFamily,
                  getComputedStyle(document.querySelector('button.primary')).fontFamily]"""
    )
    assert fonts[0] == fonts[1]
    assert page.title().replace("\xa0", " ") == "Betaal € 125,00 aan Corner Shop Dupont"
