"""Receipt emails, received by a real SMTP server, in the customer's language."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.payments.services import fulfil_payment, start_payment
from portal.providers.base import ProviderPayment
from tests.factories import make_request, statement_body

EXPECTED = {
    "en": ("Your receipt from Test Shop: €125.00", "Thank you for your payment to Test Shop."),
    "fr": ("Votre reçu de Test Shop : 125,00 €", "Merci pour votre paiement à Test Shop."),
    "nl": ("Uw betalingsbewijs van Test Shop: € 125,00", "Bedankt voor uw betaling aan Test Shop."),
    "de": ("Ihre Quittung von Test Shop: 125,00 €", "Vielen Dank für Ihre Zahlung an Test Shop."),
}


def _spaces(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.mark.parametrize("locale", ["en", "fr", "nl", "de"])
def test_one_receipt_in_the_customers_language(app, merchant, smtp, locale):
    merchant.merchant.support_email = "help@shop.example"
    body = statement_body()
    body["customer"]["locale"] = locale
    pr = make_request(merchant, body)
    payment = start_payment(pr, None, locale=locale)
    state = ProviderPayment(
        status="succeeded", amount=12500, currency="EUR", card_brand="visa", card_last4="4242"
    )
    assert fulfil_payment(payment.id, state)
    db.session.commit()
    assert not fulfil_payment(payment.id, state)  # a duplicate notification sends nothing
    db.session.commit()
    run_due_jobs()
    [mail] = smtp.messages
    subject, greeting = EXPECTED[locale]
    assert _spaces(str(mail["Subject"])) == subject
    assert mail["X-Envelope-To"] == "jan@example.com"
    assert mail["From"].startswith("Test Shop")
    assert mail["Reply-To"] == "help@shop.example"
    assert mail.is_multipart()
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for part in (text, html):
        assert greeting in _spaces(part)
        assert payment.receipt_number in part
        assert "4242" in part and "STMT-1" in part
        assert f"/receipt/{payment.id}" in part
    run_due_jobs()
    assert len(smtp.messages) == 1
