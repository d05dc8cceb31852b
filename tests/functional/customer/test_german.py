"""German, Belgium's third official language, everywhere a customer reads: the pages,
the switcher, Accept-Language, the e-mails, the SMS and the error pages."""

from __future__ import annotations

from portal.delivery.services import sms_text
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.links import link_token, link_url
from portal.payments.models import Payment
from tests.factories import make_request, statement_body, wallet_body
from tests.functional.customer.test_pages import csrf, follow, page, pay


def _plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


def _german(body=None):
    body = body or statement_body(due_date="2026-11-06")
    body["customer"]["locale"] = "de"
    return body


def test_a_statement_in_german(client, merchant):
    resp = page(client, make_request(merchant, _german()))
    text = _plain(resp.text)
    assert 'lang="de"' in resp.text
    assert "Kontoauszug" in text and "Fälliger Betrag" in text
    assert "125,00 €" in text and "150,00 €" in text
    assert "6. November 2026" in text  # de_BE, the merchant's country
    assert "Weiter zur Zahlung" in text
    assert "<title>125,00 € an Test Shop zahlen</title>" in text


def test_german_from_the_switcher_and_from_the_browser(client, merchant):
    body = statement_body()
    del body["customer"]["locale"]
    pr = make_request(merchant, body)
    assert 'lang="de"' in page(client, pr, headers={"Accept-Language": "de-DE,de;q=0.9"}).text
    menu = page(client, pr, headers={"Accept-Language": "fr"}).text
    assert 'hreflang="de"' in menu and ">Deutsch<" in menu
    chosen = page(client, pr, "?lang=de", headers={"Accept-Language": "fr"})
    assert 'lang="de"' in chosen.text and "portal_locale=de" in chosen.headers["Set-Cookie"]


def test_a_german_payment_and_its_receipt(client, merchant, smtp):
    pr = make_request(merchant, _german())
    result = follow(client, pay(client, pr))
    assert "Zahlung erhalten — vielen Dank!" in result.text
    payment = db.session.query(Payment).one()
    receipt = _plain(page(client, pr, f"/receipt/{payment.id}").text)
    assert "Quittung" in receipt and "Bezahlter Betrag" in receipt and "125,00 €" in receipt
    run_due_jobs()
    (mail,) = smtp.messages
    assert _plain(str(mail["Subject"])) == "Ihre Quittung von Test Shop: 125,00 €"
    plain = _plain(mail.get_body(("plain",)).get_content())
    assert "Guten Tag Jan Peeters," in plain and "Quittungsnummer:" in plain


def test_german_card_errors_and_declines(client, merchant):
    pr = make_request(merchant, _german())
    declined = follow(client, pay(client, pr, card="4000 0000 0000 0002"))
    text = declined.text
    assert "Die Zahlung ist nicht durchgegangen" in text
    assert "Ihre Karte wurde abgelehnt" in text and text.count("Es wurde nichts belastet") == 1


def test_a_german_amount_error_states_the_limits(client, merchant):
    pr = make_request(merchant, _german(wallet_body()))
    opened = page(client, pr)
    refused = client.post(
        f"/p/{link_token(pr.id)}/pay", data={"csrf_token": csrf(opened), "amount": "abc"}
    )
    assert refused.status_code == 422
    assert "zwischen 5,00 € und 500,00 €" in _plain(refused.text)


def test_german_error_pages(client, merchant):
    pr = make_request(merchant, _german())
    refused = client.post(f"/p/{link_token(pr.id)}/pay", data={}, headers={"Accept-Language": "en"})
    # A form without its link's token: nothing done, the way back to a fresh form in German.
    assert refused.status_code == 400 and "Dieses Formular ist abgelaufen" in refused.text
    assert f'href="/p/{link_token(pr.id)}"' in refused.text
    page(client, pr, "?lang=de")
    gone = client.get("/p/nonsense", headers={"Accept-Language": "en"})
    assert gone.status_code == 404 and "Dieser Link ist nicht verfügbar" in gone.text


def test_a_german_sms(app, merchant):
    pr = make_request(merchant, _german())
    text = sms_text(pr, "de", link_url(pr.id))
    assert text.startswith("Test Shop: bitte zahlen Sie 125,00 € hier: https://")
    assert len(text) <= 160


def test_the_api_takes_german(client, merchant):
    body = statement_body(reference="DE-API")
    body["customer"]["locale"] = "de"
    resp = client.post("/api/v1/payment-requests", json=body, headers=merchant.headers)
    assert resp.status_code == 201, resp.text
    assert resp.json["customer"]["locale"] == "de"
    body["customer"]["locale"] = "it"
    body["reference"] = "IT-API"
    refused = client.post("/api/v1/payment-requests", json=body, headers=merchant.headers)
    assert refused.status_code == 422
    assert refused.json["error"]["code"] == "unsupported_locale"
