"""Sending links by email (a real SMTP server) and SMS (the real Twilio SDK over HTTP),
QR codes that decode to the link, and framing per merchant."""

from __future__ import annotations

import io
import json
import re

import pytest
import zxingcpp
from PIL import Image

from portal.delivery import shortlinks
from portal.delivery.models import LinkDelivery
from portal.delivery.services import sms_text
from portal.delivery.sms import gsm7_length
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.links import link_token, link_url
from portal.payment_requests.models import PaymentRequest
from tests.factories import make_merchant, make_request, statement_body, wallet_body
from tests.servers import HTTPRecorder, json_response

URL = "/api/v1/payment-requests"

SUBJECTS = {
    "en": "Test Shop: your payment of €125.00",
    "fr": "Test Shop : votre paiement de 125,00 €",
    "nl": "Test Shop: uw betaling van € 125,00",
}


@pytest.fixture
def twilio(app):
    def respond(req):
        return json_response(
            201,
            {"sid": f"SM{len(twilio_server.requests):032d}", "status": "queued", "body": "x"},
        )

    twilio_server = HTTPRecorder(respond).start()
    app.config["PORTAL_SMS_URL"] = (
        f"twilio://ACtest:secret@%2B3225550100?api_base={twilio_server.url}"
    )
    yield twilio_server
    twilio_server.stop()


def _spaces(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.mark.parametrize("locale", ["en", "fr", "nl"])
def test_link_email_in_customer_language(client, merchant, smtp, locale):
    body = statement_body(due_date="2026-12-15", send=["email"])
    body["customer"]["locale"] = locale
    resp = client.post(URL, json=body, headers=merchant.headers)
    assert resp.status_code == 201, resp.json
    assert [d["status"] for d in resp.json["deliveries"]] == ["queued"]
    assert run_due_jobs() == 1
    [message] = smtp.messages
    assert _spaces(str(message["Subject"])) == SUBJECTS[locale]
    assert message["X-Envelope-To"] == "jan@example.com"
    assert "Test Shop" in message["From"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert resp.json["url"] in text and resp.json["url"] in html
    marker = {"en": "Pay now", "fr": "Payer maintenant", "nl": "Nu betalen"}[locale]
    assert marker in html
    delivery = client.get(f"{URL}/{resp.json['id']}", headers=merchant.headers).json["deliveries"][
        0
    ]
    assert delivery["status"] == "sent" and delivery["destination"] == "j***@example.com"
    assert delivery["provider_message_id"] == message["Message-ID"]


def test_sms_through_twilio_sdk(client, merchant, twilio):
    body = wallet_body(amount=2500)
    del body["wallet"]
    body["customer"]["phone"] = "+32 470 12 34 56"
    pr = client.post(URL, json=body, headers=merchant.headers).json
    resp = client.post(f"{URL}/{pr['id']}/send", json={"channel": "sms"}, headers=merchant.headers)
    assert resp.status_code == 202, resp.json
    assert resp.json["destination"] == "+32******456"
    run_due_jobs()
    [req] = twilio.requests
    assert req.method == "POST"
    assert req.path == "/2010-04-01/Accounts/ACtest/Messages.json"
    form = req.form()
    assert form["To"] == ["+32470123456"]
    assert form["From"] == ["+3225550100"]
    text = form["Body"][0]
    # the wallet_body customer reads French
    # the short link of the request (/s/<code>), one GSM-7 segment
    url = shortlinks.short_url(pr["id"])
    assert re.fullmatch(r"https://portal\.test/s/[0-9A-Za-z]{16}", url)
    assert text == f"Test Shop : merci de régler 25,00 € ici : {url}"
    assert gsm7_length(text) is not None and gsm7_length(text) <= 160
    delivery = db.session.get(LinkDelivery, resp.json["id"])
    assert delivery.status == "sent" and delivery.provider_message_id.startswith("SM")


def test_sms_shortens_a_long_merchant_name(app):
    m = make_merchant(name="The Very Long Name Of A Corner Shop And Bakery And Wine Cellar Ltd")
    pr = make_request(m)
    text = sms_text(pr, "fr", link_url(pr.id))
    assert gsm7_length(text) <= 160
    assert link_url(pr.id) in text


def test_provider_failure_is_retried_then_recorded(client, merchant, app):
    failing = HTTPRecorder(lambda req: json_response(500, {"message": "down"})).start()
    app.config["PORTAL_SMS_URL"] = f"twilio://ACtest:secret@%2B3225550100?api_base={failing.url}"
    try:
        pr = make_request(merchant)
        resp = client.post(
            f"{URL}/{pr.id}/send", json={"channel": "sms", "to": "+32470123456"},
            headers=merchant.headers,
        )  # fmt: skip
        assert resp.status_code == 202
        from portal.jobs.models import Job

        for _ in range(10):  # make each retry due now instead of waiting for its backoff
            db.session.query(Job).filter(Job.status == "queued").update({"run_at": Job.created_at})
            db.session.commit()
            run_due_jobs()
        delivery = db.session.get(LinkDelivery, resp.json["id"])
        db.session.refresh(delivery)
        assert delivery.status == "failed"
        assert delivery.attempts == 5
        assert "500" in delivery.error or "down" in delivery.error
        assert len(failing.requests) == 5
    finally:
        failing.stop()


@pytest.mark.parametrize(
    ("payload", "code", "status"),
    [
        ({"channel": "fax"}, "invalid_channel", 422),
        ({"channel": "email", "to": "nope"}, "invalid_email", 422),
        ({"channel": "sms", "to": "12345"}, "invalid_phone", 422),
        ({"channel": "sms"}, "missing_destination", 422),
    ],
)
def test_bad_send_input(client, merchant, payload, code, status):
    pr = make_request(merchant)
    resp = client.post(f"{URL}/{pr.id}/send", json=payload, headers=merchant.headers)
    assert resp.status_code == status
    assert resp.json["error"]["code"] == code
    assert db.session.query(LinkDelivery).count() == 0


def test_send_on_create_without_address_is_refused(client, merchant):
    resp = client.post(URL, json=statement_body(send=["sms"]), headers=merchant.headers)
    assert resp.status_code == 422
    assert resp.json["error"] == {
        "code": "missing_destination",
        "message": "This customer has no phone number.",
        "field": "send[0]",
    }
    assert db.session.query(PaymentRequest).count() == 0


@pytest.mark.parametrize("status", ["paid", "void", "expired"])
def test_resending_closed_link_is_409(client, merchant, status):
    pr = make_request(merchant)
    pr.status = status
    db.session.commit()
    resp = client.post(f"{URL}/{pr.id}/send", json={"channel": "email"}, headers=merchant.headers)
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "link_not_sendable"


def test_qr_codes_decode_to_the_link(client, merchant):
    pr = make_request(merchant)
    api = client.get(f"{URL}/{pr.id}", headers=merchant.headers).json
    png = client.get(f"/p/{link_token(pr.id)}/qr.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))
    assert code.text == api["url"]
    svg = client.get(api["qr_code_url"].removeprefix("https://portal.test"))
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert b"<svg" in svg.data
    assert client.get(f"/p/{link_token('pr_unknown')}/qr.png").status_code == 404
    assert client.get("/p/garbage/qr.svg").status_code == 404


def test_framing_follows_the_merchants_origins(client, app):
    closed = make_merchant(name="Closed")
    open_ = make_merchant(name="Embedder")
    open_.merchant.embed_origins = ["https://shop.example.com", "https://www.shop.example.com"]
    db.session.commit()
    for m, expected in [
        (closed, "frame-ancestors 'none'"),
        (open_, "frame-ancestors https://shop.example.com https://www.shop.example.com;"),
    ]:
        pr = make_request(m)
        resp = client.get(f"/p/{link_token(pr.id)}")
        assert resp.status_code == 200
        assert expected in resp.headers["Content-Security-Policy"]


def test_embed_origins_cli(app):
    m = make_merchant()
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["merchant", "embed-origins", m.id, "https://shop.example.com"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["embed_origins"] == ["https://shop.example.com"]
    bad = runner.invoke(args=["merchant", "embed-origins", m.id, "http://shop.example.com/x"])
    assert bad.exit_code != 0
    cleared = runner.invoke(args=["merchant", "embed-origins", m.id])
    assert json.loads(cleared.output)["embed_origins"] == []
