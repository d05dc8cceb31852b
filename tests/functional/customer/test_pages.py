"""The customer's pages: every kind and state, the sandbox pay flow, locales, receipts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.links import link_token
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from tests.factories import deposit_body, make_request, statement_body, wallet_body

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def page(client, pr, suffix="", **kw):
    return client.get(f"/p/{link_token(pr.id)}{suffix}", **kw)


def csrf(resp) -> str:
    return CSRF.search(resp.text).group(1)


def pay(client, pr, card="4242 4242 4242 4242", **form):
    """Open the link, submit the pay form, then the card form; returns the final response."""
    opened = page(client, pr)
    token = csrf(opened)
    resp = client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": token, **form})
    if resp.status_code != 303:
        return resp
    checkout = client.get(resp.headers["Location"])
    assert checkout.status_code == 200
    resp = client.post(
        resp.headers["Location"],
        data={"csrf_token": csrf(checkout), "card_number": card, "expiry": "12/39", "cvc": "123"},
    )
    return resp


def follow(client, resp):
    while resp.status_code in (302, 303):
        resp = client.get(resp.headers["Location"])
    return resp


def _spaces(text):
    return text.replace("\u202f", " ").replace("\xa0", " ")


def test_statement_page(client, merchant):
    pr = make_request(merchant, statement_body(due_date="2020-01-31"))
    resp = page(client, pr)
    assert resp.status_code == 200
    text = _spaces(resp.text)
    assert "Rekeningoverzicht" in text  # the customer reads Dutch
    assert "Bread" in text and "Wine" in text and "L1" in text
    assert "€ 125,00" in text and "€ 150,00" in text
    assert "Achterstallig" in text  # overdue
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "strict-origin"
    csp = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "'nonce-" in csp
    db.session.refresh(pr)
    assert pr.open_count == 1 and pr.first_opened_at is not None


def test_opening_a_link_counts_it_without_touching_updated_at(client, merchant):
    pr = make_request(merchant)
    db.session.execute(
        update(PaymentRequest)
        .where(PaymentRequest.id == pr.id)
        .values(updated_at=utcnow() - timedelta(hours=1))
    )
    db.session.commit()
    db.session.refresh(pr)
    before = pr.updated_at
    assert page(client, pr).status_code == 200
    assert page(client, pr).status_code == 200
    db.session.refresh(pr)
    assert pr.open_count == 2
    assert pr.updated_at == before  # an open is not a change of the request


def test_wallet_page_offers_suggested_and_free_amounts(client, merchant):
    pr = make_request(merchant, wallet_body())
    text = _spaces(page(client, pr).text)
    assert "Rechargez votre cagnotte" in text
    for amount in ("10,00 €", "20,00 €", "50,00 €"):
        assert amount in text
    assert 'name="amount_choice" value="1000"' in text
    assert 'id="amount"' in text


def test_deposit_page(client, merchant):
    pr = make_request(merchant, deposit_body(allow_full_payment=True))
    text = _spaces(page(client, pr, headers={"Accept-Language": "en"}).text)
    assert "Deposit for your order" in text and "ORD-1" in text
    assert "€100.00" in text and "€30.00" in text  # total and deposit
    assert "Left to pay on collection" in text
    assert "Pay the whole order now" in text


def test_pay_statement_with_the_success_card(client, merchant, smtp):
    pr = make_request(merchant)
    result = follow(client, pay(client, pr))
    assert result.status_code == 200
    assert "Betaling ontvangen" in result.text
    payment = db.session.query(Payment).one()
    assert payment.status == "succeeded" and payment.card_last4 == "4242"
    receipt = page(client, pr, f"/receipt/{payment.id}")
    assert receipt.status_code == 200 and payment.receipt_number in receipt.text
    # paid: the page shows the receipt and never a second payment form
    after = page(client, pr)
    assert "Betaald — dank u" in after.text
    assert '/pay"' not in after.text
    run_due_jobs()
    [mail] = smtp.messages
    assert payment.receipt_number in mail.get_body(("plain",)).get_content()
    db.session.refresh(payment)
    assert payment.receipt_sent_at is not None


@pytest.mark.parametrize(
    ("card", "code_text"),
    [
        ("4000 0000 0000 0002", "geweigerd"),
        ("4000 0000 0000 9995", "onvoldoende saldo"),
    ],
)
def test_declined_then_retry(client, merchant, card, code_text):
    pr = make_request(merchant)
    result = follow(client, pay(client, pr, card=card))
    assert code_text in result.text
    assert "Opnieuw proberen" in result.text
    assert db.session.get(PaymentRequest, pr.id).status == "open"
    retried = follow(client, pay(client, pr))
    assert "Betaling ontvangen" in retried.text
    statuses = sorted(p.status for p in db.session.query(Payment))
    assert statuses == ["failed", "succeeded"]


@pytest.mark.parametrize(("decision", "paid"), [("approve", True), ("fail", False)])
def test_three_d_secure(client, merchant, decision, paid):
    pr = make_request(merchant)
    resp = pay(client, pr, card="4000 0027 6000 3184")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/3ds")
    step = client.get(resp.headers["Location"])
    assert "3-D Secure" in step.text
    done = follow(
        client,
        client.post(
            resp.headers["Location"], data={"csrf_token": csrf(step), "decision": decision}
        ),
    )
    assert db.session.get(PaymentRequest, pr.id).status == ("paid" if paid else "open")
    assert ("Betaling ontvangen" in done.text) is paid


def test_partial_payment_shows_paid_and_remaining(client, merchant):
    pr = make_request(merchant, statement_body(allow_partial=True))
    follow(client, pay(client, pr, amount="50,00"))
    text = _spaces(page(client, pr).text)
    assert db.session.get(PaymentRequest, pr.id).status == "partially_paid"
    assert "€ 50,00" in text and "€ 75,00" in text
    assert "Gedeeltelijk betaald" in text


@pytest.mark.parametrize(
    ("form", "message"),
    [
        # Every refusal states the range the customer may choose from.
        ({"amount": "abc"}, "Veuillez saisir un montant entre 5,00\xa0€ et 500,00\xa0€"),
        ({"amount": "1,00"}, "Veuillez choisir un montant entre 5,00\xa0€ et 500,00\xa0€"),
        ({"amount": "600,00"}, "Veuillez choisir un montant entre 5,00\xa0€ et 500,00\xa0€"),
        ({}, "choisir ou saisir un montant"),
        ({"amount": "20", "email": "nope"}, "adresse e-mail valide"),
    ],
)
def test_wallet_amount_is_checked_on_the_server(client, merchant, form, message):
    pr = make_request(merchant, wallet_body())
    resp = pay(client, pr, **form)
    assert resp.status_code == 422
    assert message in resp.text
    assert db.session.query(Payment).count() == 0


def test_wallet_suggested_amount_and_receipt_email_field(client, merchant):
    pr = make_request(merchant, wallet_body())
    assert 'name="email"' in page(client, pr).text  # no email known: optional field
    follow(client, pay(client, pr, amount_choice="2000", email="marie@example.com"))
    payment = db.session.query(Payment).one()
    assert payment.amount == 2000 and payment.receipt_email == "marie@example.com"
    assert db.session.get(PaymentRequest, pr.id).status == "paid"


def test_whole_order_instead_of_deposit(client, merchant):
    pr = make_request(merchant, deposit_body(allow_full_payment=True))
    follow(client, pay(client, pr, full_order="1"))
    assert db.session.query(Payment).one().amount == 10000
    assert db.session.get(PaymentRequest, pr.id).status == "paid"


@pytest.mark.parametrize("state", ["void", "expired"])
def test_closed_links_say_what_to_do(client, merchant, state):
    merchant.merchant.support_email = "hulp@winkel.example"
    pr = make_request(merchant)
    pr.status = state
    db.session.commit()
    resp = page(client, pr)
    assert resp.status_code == 410
    assert "hulp@winkel.example" in resp.text
    assert {"void": "geannuleerd", "expired": "verlopen"}[state] in resp.text
    assert '/pay"' not in resp.text


def test_processing_payment_blocks_a_second_one(client, merchant):
    pr = make_request(merchant)
    db.session.add(
        Payment(request_id=pr.id, merchant_id=pr.merchant_id, amount=12500, currency="EUR",
                status="processing", provider="sandbox", provider_data={})
    )  # fmt: skip
    db.session.commit()
    text = page(client, pr).text
    assert "wordt verwerkt" in text
    assert '/pay"' not in text


def test_locale_order(client, merchant):
    body = statement_body()
    del body["customer"]["locale"]
    pr = make_request(merchant, body)
    assert 'lang="fr"' in page(client, pr, headers={"Accept-Language": "fr-BE,fr;q=0.9"}).text
    assert (
        'lang="en"' in page(client, pr, headers={"Accept-Language": "ja"}).text
    )  # merchant default
    assert 'lang="de"' in page(client, pr, headers={"Accept-Language": "de-BE,de;q=0.9"}).text
    chosen = page(client, pr, "?lang=nl", headers={"Accept-Language": "fr"})
    assert 'lang="nl"' in chosen.text
    assert "portal_locale=nl" in chosen.headers["Set-Cookie"]
    # remembered on the next visit, even over the browser's language
    assert 'lang="nl"' in page(client, pr, headers={"Accept-Language": "fr"}).text


def test_pay_without_csrf_token_is_refused(client, merchant):
    pr = make_request(merchant)
    resp = client.post(f"/p/{link_token(pr.id)}/pay", data={})
    assert resp.status_code == 400
    assert db.session.query(Payment).count() == 0


def test_card_form_errors_are_explained(client, merchant):
    pr = make_request(merchant)
    token = csrf(page(client, pr))
    go = client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": token})
    checkout = client.get(go.headers["Location"])
    assert 'for="card_number"' in checkout.text and "Kaartnummer" in checkout.text
    resp = client.post(
        go.headers["Location"],
        data={"csrf_token": csrf(checkout), "card_number": "1234", "expiry": "13/20", "cvc": "1"},
    )
    assert resp.status_code == 422
    assert 'aria-invalid="true"' in resp.text
    assert db.session.query(Payment).one().status == "pending"


def test_someone_elses_payment_is_404(client, merchant):
    a, b = make_request(merchant), make_request(merchant, statement_body(reference="B"))
    follow(client, pay(client, a))
    payment = db.session.query(Payment).one()
    assert page(client, b, f"/receipt/{payment.id}").status_code == 404
    assert page(client, b, f"/return/{payment.id}").status_code == 404


def test_prefilled_partial_amount_submits_as_is(client, merchant):
    """The amount field is prefilled with what is due; sending it unchanged pays it all."""
    pr = make_request(merchant, statement_body(allow_partial=True))
    opened = page(client, pr)
    value = re.search(r'id="amount" name="amount"[^>]*value="([^"]+)"', opened.text).group(1)
    assert _spaces(value) == "125,00"
    resp = client.post(
        f"/p/{link_token(pr.id)}/pay", data={"csrf_token": csrf(opened), "amount": value}
    )
    assert resp.status_code == 303
    assert db.session.query(Payment).one().amount == 12500


@pytest.mark.parametrize(
    ("text", "minor"),
    [("25,50", 2550), ("25.50", 2550), ("€ 1.234,56", 123456), ("1 234,56 €", 123456),
     ("1,234.56", 123456), ("0", None), ("abc", None), ("1.005", None)],
)  # fmt: skip
def test_parse_amount(text, minor):
    from portal.customer.forms import parse_amount

    assert parse_amount(text, "EUR") == minor
