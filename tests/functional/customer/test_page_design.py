"""What a customer saw that was wrong (issue 16): what leads the page, its title, paid
pages' wording, the test-mode mark, dates for the merchant's country and clock, French
typography, one "Nothing was charged.", error pages in the chosen language, and the
language switch after a form error."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.links import link_token
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from tests.factories import make_merchant, make_request, statement_body, wallet_body
from tests.functional.customer.test_pages import csrf, follow, page, pay

TITLE = re.compile(r"<title>(.*?)</title>", re.S)
NARROW = "\u202f"


def _plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


def _title(resp) -> str:
    return _plain(TITLE.search(resp.text).group(1).strip())


def _english(body=None):
    body = body or statement_body(due_date="2026-11-06")
    body["customer"]["locale"] = "en"
    return body


def test_the_amount_due_and_due_date_lead_the_page(client, merchant):
    pr = make_request(merchant, _english())
    text = page(client, pr).text
    lead, lines = text.index('class="lead'), text.index('class="lines"')
    assert lead < lines
    assert "Amount due" in text[lead:lines] and "€125.00" in text[lead:lines]
    assert "Due by" in text[lead:lines]
    assert text.index('class="lead') < text.index("<h1>")  # the amount, then what it is for


def test_the_title_says_what_to_do(client, merchant):
    pr = make_request(merchant, _english())
    assert _title(page(client, pr)) == "Pay €125.00 to Test Shop"
    wallet = make_request(merchant, _english(wallet_body()))
    assert _title(page(client, wallet)) == "Top up your wallet at Test Shop"
    dutch = make_request(merchant, statement_body(reference="NL-1"))
    assert _title(page(client, dutch)) == "Betaal € 125,00 aan Test Shop"


def test_a_paid_page_says_paid_not_amount_due(client, merchant, smtp):
    pr = make_request(merchant, _english())
    follow(client, pay(client, pr))
    resp = page(client, pr)
    text = _plain(resp.text)
    assert "Paid — thank you" in text
    assert "Amount due" not in text
    assert "valid until" not in text
    assert _title(resp) == "Paid to Test Shop"
    still_open = make_request(merchant, _english(statement_body(reference="S2")))
    open_text = _plain(page(client, still_open).text)
    assert "Amount due" in open_text and "valid until" in open_text  # while owing, both


def test_the_sandbox_says_test_mode_on_every_page(client, merchant):
    pr = make_request(merchant, _english())
    assert "Test mode" in page(client, pr).text
    opened = page(client, pr)
    go = client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": csrf(opened)})
    assert "Test mode" in client.get(go.headers["Location"]).text


def test_credits_are_negative_and_long_statements_fold(client, merchant):
    lines = [
        {"date": "2026-10-01", "description": f"Line {i}", "amount": 1000, "reference": f"L{i}"}
        for i in range(12)
    ]
    lines.append({"date": "2026-10-30", "description": "Credit note", "amount": -500})
    body = _english(statement_body(amount=11500))
    body["statement"].update(lines=lines, balance=11500)
    text = _plain(page(client, make_request(merchant, body)).text)
    assert 'class="credit"' in text and "-€5.00" in text
    assert "Show the other 3 lines" in text


@pytest.mark.parametrize(
    ("country", "short", "long"),
    [("BE", "06/11/26", "6 November 2026"), ("US", "11/6/26", "November 6, 2026")],
)
def test_english_dates_follow_the_merchants_country(client, app, country, short, long):
    shop = make_merchant(name=f"Shop {country}", country=country)
    body = _english()
    body["statement"]["lines"][0]["date"] = "2026-11-06"
    text = _plain(page(client, make_request(shop, body)).text)
    assert short in text and long in text
    if country == "BE":
        assert "11/6/26" not in text


def test_dutch_dates_do_not_wrap(client, merchant):
    text = page(client, make_request(merchant, statement_body(due_date="2026-11-06"))).text
    assert "6\xa0november\xa02026" in text
    assert "6 november 2026" not in text


def test_the_receipt_shows_the_merchants_time_with_its_zone(client, merchant, smtp):
    pr = make_request(merchant, _english())
    follow(client, pay(client, pr))
    payment = db.session.query(Payment).one()
    db.session.execute(
        update(Payment).where(Payment.id == payment.id).values(
            succeeded_at=payment.succeeded_at.replace(month=11, day=6, hour=13, minute=5)
        )
    )  # fmt: skip
    db.session.commit()
    text = _plain(page(client, pr, f"/receipt/{payment.id}").text)
    assert "06 Nov 2026, 14:05 (Europe/Brussels)" in text  # 13:05 UTC is 14:05 in Brussels
    run_due_jobs()
    (mail,) = smtp.messages
    assert "06 Nov 2026, 14:05 (Europe/Brussels)" in _plain(mail.get_body(("plain",)).get_content())


def test_another_zone_is_shown_as_such(client, app):
    shop = make_merchant(name="NY Shop", country="US", time_zone="America/New_York")
    db.session.execute(update(Merchant).where(Merchant.id == shop.id).values(country="US"))
    pr = make_request(shop, _english())
    follow(client, pay(client, pr))
    payment = db.session.query(Payment).one()
    text = _plain(page(client, pr, f"/receipt/{payment.id}").text)
    assert "(America/New_York)" in text and "Europe/Brussels" not in text


def test_french_has_a_narrow_space_before_colons_in_pages_and_mails(client, merchant, smtp):
    body = statement_body(reference="FR-1")
    body["customer"]["locale"] = "fr"
    pr = make_request(merchant, body)
    text = page(client, pr).text
    assert f"Période{NARROW}:" in text
    words = re.sub(r"<style.*?</style>|<[^>]*>|https?://\S+", "", text, flags=re.S)
    assert re.search(r"[^\u202f][:;!?]\s", words) is None
    follow(client, pay(client, pr))
    run_due_jobs()
    (mail,) = smtp.messages
    plain = mail.get_body(("plain",)).get_content()
    assert f"Numéro de reçu{NARROW}:" in plain and f"Montant payé{NARROW}:" in plain
    assert re.search(r"[^\u202f][:;!?]\s", re.sub(r"https?://\S+", "", plain)) is None


@pytest.mark.parametrize("locale", ["en", "fr", "nl"])
def test_a_failed_3_d_secure_says_nothing_was_charged_once(client, merchant, locale):
    from flask_babel import force_locale, gettext

    body = statement_body()
    body["customer"]["locale"] = locale
    pr = make_request(merchant, body)
    resp = pay(client, pr, card="4000 0027 6000 3184")
    step = client.get(resp.headers["Location"])
    done = follow(
        client,
        client.post(resp.headers["Location"], data={"csrf_token": csrf(step), "decision": "fail"}),
    )
    with force_locale(locale):
        nothing = gettext("Nothing was charged.").rstrip(".")
    assert _plain(done.text).count(_plain(nothing)) == 1


def test_the_csrf_error_page_speaks_the_chosen_language(client, merchant):
    pr = make_request(merchant, _english())
    page(client, pr, "?lang=nl", headers={"Accept-Language": "fr"})  # chosen: Dutch
    resp = client.post(f"/p/{link_token(pr.id)}/pay", data={}, headers={"Accept-Language": "fr"})
    assert resp.status_code == 400
    assert 'lang="nl"' in resp.text and "Dit formulier is verlopen" in resp.text


def test_an_error_page_without_a_choice_speaks_the_customers_locale(client, merchant):
    pr = make_request(merchant)  # the merchant set Dutch for this customer
    resp = client.post(f"/p/{link_token(pr.id)}/pay", data={}, headers={"Accept-Language": "fr"})
    assert resp.status_code == 400 and 'lang="nl"' in resp.text


def test_an_unknown_link_404_follows_the_remembered_choice(client, merchant):
    pr = make_request(merchant, _english())
    page(client, pr, "?lang=fr")
    resp = client.get("/p/not-a-token", headers={"Accept-Language": "nl"})
    assert resp.status_code == 404 and 'lang="fr"' in resp.text


def test_switching_language_after_a_form_error_works(client, merchant):
    pr = make_request(merchant, _english(wallet_body()))
    opened = page(client, pr)
    refused = client.post(
        f"/p/{link_token(pr.id)}/pay", data={"csrf_token": csrf(opened), "amount": "2 x 10"}
    )
    assert refused.status_code == 422
    links = re.findall(r'href="([^"]*\?lang=fr)"', refused.text)
    assert links, "the switcher offers French"
    switched = client.get(links[0])
    assert switched.status_code == 200
    assert "Rechargez votre cagnotte" in switched.text


def test_stripes_3_d_secure_failure_says_it_once_too(client, merchant):
    """Stripe names the failed check ``payment_intent_authentication_failure``: the page
    explains it as the bank's check and says "Nothing was charged." once."""
    pr = make_request(merchant, _english())
    follow(client, pay(client, pr, card="4000 0000 0000 0002"))
    payment = db.session.query(Payment).one()
    db.session.execute(
        update(Payment).where(Payment.id == payment.id)
        .values(failure_code="payment_intent_authentication_failure")
    )  # fmt: skip
    db.session.commit()
    text = page(client, pr, f"/return/{payment.id}").text
    assert "The security check with your bank did not succeed" in text
    assert text.count("Nothing was charged") == 1


def test_the_qr_code_of_a_closed_link_is_404(client, merchant):
    voided = make_request(merchant, _english(statement_body(reference="Q-VOID")))
    expired = make_request(merchant, _english(statement_body(reference="Q-EXP")))
    live = make_request(merchant, _english(statement_body(reference="Q-LIVE")))
    client.post(f"/api/v1/payment-requests/{voided.id}/void", headers=merchant.headers)
    db.session.execute(
        update(PaymentRequest).where(PaymentRequest.id == expired.id)
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )  # fmt: skip
    db.session.commit()
    for pr in (voided, expired):
        for kind in ("svg", "png"):
            assert page(client, pr, f"/qr.{kind}").status_code == 404, (pr.reference, kind)
    assert page(client, live, "/qr.svg").status_code == 200


def test_a_refunded_request_leads_with_the_refund(client, merchant, smtp):
    pr = make_request(merchant, _english())
    follow(client, pay(client, pr))
    payment = db.session.query(Payment).one()
    client.post(f"/api/v1/payments/{payment.id}/refunds", json={}, headers=merchant.headers)
    text = _plain(page(client, pr).text)
    lead = text[text.index('class="lead') : text.index("<h1>")]
    assert "Paid and refunded" in lead and "€125.00" in lead
    assert "Amount due" not in text
