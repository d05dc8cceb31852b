"""The PDF statement and receipt, drawn by WeasyPrint and read back with pypdf: the
amounts, the dates, the language, the merchant's legal details and logo; the receipt
e-mail carries its PDF."""

from __future__ import annotations

import base64
import io

import pytest
from pypdf import PdfReader
from sqlalchemy import update

from portal.documents import RemoteFetchRefused, drawable_logo
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.merchants.models import Merchant
from portal.payments.models import Payment
from tests.factories import deposit_body, make_request, statement_body
from tests.functional.customer.test_pages import follow, page, pay

# A 1 by 1 PNG, as a merchant's logo given inline.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cf00000301010018dd8db00000000049454e44ae426082"
    )
).decode()
LEGAL = "Test Shop SRL\nRue Haute 1, 1000 Bruxelles\nBE 0123.456.789"


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return (
        "\n".join(p.extract_text() for p in reader.pages)
        .replace("\xa0", " ")
        .replace("\u202f", " ")
    )


def _images(pdf: bytes) -> int:
    return sum(len(p.images) for p in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def shop(merchant):
    db.session.execute(
        update(Merchant).where(Merchant.id == merchant.id)
        .values(legal_details=LEGAL, logo_url=f"data:image/png;base64,{PNG}")
    )  # fmt: skip
    db.session.commit()
    return merchant


def _locale(body, locale):
    body["customer"]["locale"] = locale
    return body


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("en", ("Account statement", "Amount due", "€125.00", "01 Oct 2026", "03/10/26")),
        ("fr", ("Relevé de compte", "Montant dû", "125,00 €", "1 oct. 2026", "3/10/26")),
        ("nl", ("Rekeningoverzicht", "€ 125,00", "1 okt 2026", "3/10/2026")),
        ("de", ("Kontoauszug", "Fälliger Betrag", "125,00 €", "01.10.2026", "03.10.26")),
    ],
)
def test_the_statement_pdf_in_the_customers_language(client, shop, locale, words):
    pr = make_request(shop, _locale(statement_body(due_date="2026-11-30"), locale))
    resp = page(client, pr, "/document.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="statement-STMT-1.pdf"'
    assert resp.headers["Cache-Control"] == "no-store"
    text = _text(resp.data)
    for word in words:
        assert word in text, (word, text)
    assert "Bread" in text and "Wine" in text and "L2" in text
    assert "BE 0123.456.789" in text and "Rue Haute 1, 1000 Bruxelles" in text
    assert _images(resp.data) == 1  # the logo
    assert 'href="/p/' in page(client, pr).text and "/document.pdf" in page(client, pr).text


def test_the_order_pdf(client, shop):
    pr = make_request(shop, _locale(deposit_body(), "en"))
    text = _text(page(client, pr, "/document.pdf").data)
    assert "Deposit for your order" in text and "€100.00" in text and "€30.00" in text


def test_a_closed_links_pdf_is_gone_and_an_unknown_one_404(client, shop):
    pr = make_request(shop, _locale(statement_body(), "en"))
    client.post(f"/api/v1/payment-requests/{pr.id}/void", headers=shop.headers)
    assert page(client, pr, "/document.pdf").status_code == 410
    assert client.get("/p/nonsense/document.pdf").status_code == 404


def test_the_receipt_pdf_and_the_receipt_email_carry_the_same(client, shop, smtp):
    pr = make_request(shop, _locale(statement_body(), "fr"))
    follow(client, pay(client, pr))
    payment = db.session.query(Payment).one()
    db.session.execute(
        update(Payment).where(Payment.id == payment.id).values(
            succeeded_at=payment.succeeded_at.replace(month=11, day=6, hour=13, minute=5)
        )
    )  # fmt: skip
    db.session.commit()
    resp = page(client, pr, f"/receipt/{payment.id}.pdf")
    assert resp.status_code == 200
    name = f"receipt-{payment.receipt_number}.pdf"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    text = _text(resp.data)
    for word in ("Reçu", payment.receipt_number, "125,00 €", "6 nov. 2026, 14:05", "Visa"):
        assert word in text, (word, text)
    assert "(Europe/Brussels)" in text and "BE 0123.456.789" in text
    run_due_jobs()
    (mail,) = smtp.messages
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == name
    assert attachment.get_content_type() == "application/pdf"
    mailed = _text(attachment.get_content())
    assert "Reçu" in mailed and "125,00 €" in mailed and payment.receipt_number in mailed


def test_an_open_attempts_receipt_pdf_is_404(client, shop):
    pr = make_request(shop, _locale(statement_body(), "en"))
    follow(client, pay(client, pr, card="4000 0000 0000 0002"))  # declined
    payment = db.session.query(Payment).one()
    assert page(client, pr, f"/receipt/{payment.id}.pdf").status_code == 404


def test_a_remote_logo_is_never_fetched(app):
    assert drawable_logo("https://169.254.169.254/latest/meta-data") is None
    assert drawable_logo("file:///etc/passwd") is None
    assert drawable_logo("/static/../portal/config.py") is None
    assert drawable_logo(f"data:image/png;base64,{PNG}").startswith("data:image/png")
    from portal.documents import local_fetcher

    with pytest.raises(RemoteFetchRefused):
        local_fetcher().fetch("http://127.0.0.1:1/")
    with pytest.raises(RemoteFetchRefused):
        local_fetcher().fetch("file:///etc/passwd")
