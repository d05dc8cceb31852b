"""Reusable top-ups through the API and the console: created with ``reusable: true``, no
expiry, never paid themselves (also by the database), children showing their parent, a
void that stops new payments, and the printable QR card (two sizes, four languages) read
back with pypdf."""

from __future__ import annotations

import io
import re

import pypdf
import pytest
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.payments.reusable import start_reusable_payment
from portal.payments.services import PaymentRefused, fulfil_payment, start_payment
from tests.factories import make_merchant, make_request, statement_body, wallet_body
from tests.functional.merchant_console.helpers import console_user, csrf, sign_in
from tests.functional.support.test_console import https_client

URL = "/api/v1/payment-requests"
MM = 72 / 25.4  # points per millimetre
CTA = {
    "en": "Scan to top up your wallet at Test Shop",
    "fr": "Scannez pour recharger votre cagnotte chez Test Shop",
    "nl": "Scan om uw tegoed op te waarderen bij Test Shop",
    "de": "Scannen Sie, um Ihr Guthaben bei Test Shop aufzuladen",
}


def create(client, m, **overrides):
    return client.post(URL, headers=m.headers, json=wallet_body(reusable=True, **overrides))


def test_created_reusable_with_no_expiry(client, merchant):
    answer = create(client, merchant)
    assert answer.status_code == 201, answer.json
    body = answer.json
    assert body["reusable"] is True and body["expires_at"] is None
    assert body["parent_request_id"] is None and body["status"] == "open"
    ordinary = client.post(URL, headers=merchant.headers, json=wallet_body()).json
    assert ordinary["reusable"] is False and ordinary["expires_at"] is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (wallet_body(reusable=True, expires_at="2030-01-01T00:00:00Z"), "expires_at"),
        (wallet_body(reusable="yes"), "reusable"),
        (wallet_body(reusable=1), "reusable"),
        (statement_body(reusable=True), "reusable"),
    ],
)
def test_refused_with_a_code_and_a_field(client, merchant, body, field):
    answer = client.post(URL, headers=merchant.headers, json=body)
    assert answer.status_code == 422, answer.json
    error = answer.json["error"]
    assert error["code"] and error.get("field", error.get("param", "")).startswith(field)


def test_the_parent_is_never_paid_itself(app, merchant):
    parent = make_request(merchant, wallet_body(reusable=True))
    with pytest.raises(PaymentRefused):
        start_payment(parent, 1000)
    db.session.rollback()
    payment = start_reusable_payment(parent, 1000, "n" * 20)
    assert fulfil_payment(payment.id)
    db.session.commit()
    child = db.session.get(PaymentRequest, payment.request_id)
    assert child.parent_request_id == parent.id and child.status == "paid"
    assert db.session.get(PaymentRequest, parent.id).amount_paid == 0
    # The database holds it too: a reusable parent's amount_paid stays 0.
    db.session.get(PaymentRequest, parent.id).amount_paid = 1000
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_the_child_shows_its_parent_in_the_api(client, merchant):
    parent = make_request(merchant, wallet_body(reusable=True))
    payment = start_reusable_payment(parent, 2000, None)
    fulfil_payment(payment.id)
    db.session.commit()
    child = client.get(f"{URL}/{payment.request_id}", headers=merchant.headers).json
    assert child["parent_request_id"] == parent.id and child["reusable"] is False
    assert child["amount"] == 2000 and child["status"] == "paid"


def test_void_stops_new_payments_and_voids_started_children(client, merchant):
    parent = make_request(merchant, wallet_body(reusable=True))
    started = start_reusable_payment(parent, 1500, "a" * 20)
    in_flight = start_reusable_payment(parent, 2500, "b" * 20)
    in_flight.status = "processing"
    db.session.commit()
    answer = client.post(f"{URL}/{parent.id}/void", headers=merchant.headers)
    assert answer.status_code == 200 and answer.json["status"] == "void"
    assert db.session.get(PaymentRequest, started.request_id).status == "void"
    assert db.session.get(Payment, started.id).status == "canceled"
    # A payment in flight follows the ordinary rules: its child stays open, its money counts.
    assert db.session.get(PaymentRequest, in_flight.request_id).status == "open"
    assert fulfil_payment(in_flight.id)
    db.session.commit()
    with pytest.raises(PaymentRefused):
        start_reusable_payment(db.session.get(PaymentRequest, parent.id), 1000, None)
    db.session.rollback()


def read(pdf: bytes) -> tuple[float, float, str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    [page] = reader.pages
    box = page.mediabox
    text = re.sub(r"\s+", " ", page.extract_text())
    return float(box.width) / MM, float(box.height) / MM, text


@pytest.mark.parametrize("locale", ["en", "fr", "nl", "de"])
@pytest.mark.parametrize(("size", "mm"), [("a6", (105, 148)), ("card", (85.6, 54))])
def test_card_pdf_in_two_sizes_and_four_languages(client, merchant, locale, size, mm):
    pr_id = create(client, merchant).json["id"]
    answer = client.get(f"{URL}/{pr_id}/card.pdf?size={size}&locale={locale}",
                        headers=merchant.headers)  # fmt: skip
    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    assert "attachment" in answer.headers["Content-Disposition"]
    width, height, text = read(answer.data)
    assert (round(width, 1), round(height, 1)) == mm
    assert "Test Shop" in text and CTA[locale] in text and "TOPUP-1" in text


def test_card_refusals(client, merchant):
    pr_id = create(client, merchant).json["id"]
    bad_size = client.get(f"{URL}/{pr_id}/card.pdf?size=a4", headers=merchant.headers)
    assert bad_size.status_code == 422 and bad_size.json["error"]["code"]
    ordinary = client.post(URL, headers=merchant.headers, json=wallet_body()).json["id"]
    refused = client.get(f"{URL}/{ordinary}/card.pdf", headers=merchant.headers)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "not_reusable"
    other = make_merchant(name="Other")
    assert client.get(f"{URL}/{pr_id}/card.pdf", headers=other.headers).status_code == 404
    assert client.get(f"{URL}/{pr_id}/card.pdf").status_code == 401
    client.post(f"{URL}/{pr_id}/void", headers=merchant.headers)
    closed = client.get(f"{URL}/{pr_id}/card.pdf", headers=merchant.headers)
    assert closed.status_code == 409 and closed.json["error"]["code"] == "request_closed"


def test_console_makes_a_reusable_link_and_its_cards(app):
    m = make_merchant(name="Boulangerie Lenoir")
    user = console_user(m.merchant, "owner@lenoir.test", "staff")
    browser = https_client(app)
    assert sign_in(browser, user).status_code == 303
    token = csrf(browser, "/merchant/requests/new?kind=wallet_topup")
    assert 'name="reusable"' in browser.get("/merchant/requests/new?kind=wallet_topup").text
    form = {"csrf_token": token, "kind": "wallet_topup", "customer_name": "Jan",
            "wallet_mode": "fixed", "amount": "20", "reusable": "1"}  # fmt: skip
    made = browser.post("/merchant/requests", data=form)
    assert made.status_code == 303
    pr_id = made.headers["Location"].rsplit("/", 1)[-1]
    assert db.session.get(PaymentRequest, pr_id).reusable
    detail = browser.get(f"/merchant/requests/{pr_id}").text
    assert "card.pdf?size=card" in detail
    for size, mm in (("a6", (105, 148)), ("card", (85.6, 54))):
        answer = browser.get(f"/merchant/requests/{pr_id}/card.pdf?size={size}")
        assert answer.status_code == 200
        width, height, text = read(answer.data)
        assert (round(width, 1), round(height, 1)) == mm and "Boulangerie Lenoir" in text
    assert browser.get(f"/merchant/requests/{pr_id}/card.pdf?size=a4").status_code == 404
    ordinary = make_request(m, wallet_body()).id
    assert browser.get(f"/merchant/requests/{ordinary}/card.pdf").status_code == 409
