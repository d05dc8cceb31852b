"""Payment requests made by hand in the console (issue 15, item 2): one form per kind,
the API's contract and rules, a preview in the customer's language, sending by e-mail
(real SMTP) or SMS, the link and its QR code."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.delivery.models import LinkDelivery
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.links import link_url
from portal.payment_requests.models import PaymentRequest
from portal.support.models import AuditLog
from tests.factories import make_merchant
from tests.functional.merchant_console.helpers import console_user, csrf, sign_in
from tests.functional.support.test_console import https_client

DUE = (date.today() + timedelta(days=14)).isoformat()


@pytest.fixture
def clerk(app):
    m = make_merchant(name="Boulangerie Lenoir", ceiling="500.00")
    user = console_user(m.merchant, "clerk@lenoir.test", "staff", refund_limit=1000)
    user.merchant_key = m  # the API key, for the comparisons with the API
    return user


@pytest.fixture
def browser(app, clerk):
    client = https_client(app)
    assert sign_in(client, clerk).status_code == 303
    return client


def statement_form(token: str, **overrides: str) -> dict[str, object]:
    form: dict[str, object] = {
        "csrf_token": token, "kind": "statement",
        "customer_name": "Camille Martin", "customer_email": "camille@example.com",
        "customer_locale": "fr", "customer_reference": "CUST-7", "customer_phone": "0470 12 34 56",
        "reference": "RELEVE-11", "period_start": "2026-10-01", "period_end": "2026-10-31",
        "line_date": ["2026-10-03", "2026-10-12", "2026-10-20", ""],
        "line_description": ["Pain", "Avoir", "Gâteau", ""],
        "line_amount": ["12,50", "-2,50", "30,00", ""],
        "line_reference": ["T-1", "C-1", "T-2", ""],
        "balance": "40,00", "amount": "40,00", "due_date": DUE, "allow_partial": "1",
    }  # fmt: skip
    form.update(overrides)
    return form


def created(browser, form) -> PaymentRequest:
    resp = browser.post("/merchant/requests", data=form)
    assert resp.status_code == 303, re.findall(r'id="form-error">([^<]*)', resp.text)
    request_id = resp.headers["Location"].rsplit("/", 1)[-1]
    return db.session.get(PaymentRequest, request_id)


def test_a_statement_with_three_lines_by_hand(app, browser, clerk):
    pr = created(browser, statement_form(csrf(browser, "/merchant/requests/new")))
    assert (pr.kind, pr.amount, pr.balance, pr.allow_partial) == ("statement", 4000, 4000, True)
    assert pr.customer_locale == "fr" and pr.customer_email == "camille@example.com"
    assert pr.customer_phone == "+32470123456"  # a national number, read with the shop's country
    assert [(ln.description, ln.amount, ln.reference) for ln in pr.statement_lines] == [
        ("Pain", 1250, "T-1"), ("Avoir", -250, "C-1"), ("Gâteau", 3000, "T-2"),
    ]  # fmt: skip
    # the API's expiry rule: 30 days after the due date
    assert pr.expires_at.date() == date.fromisoformat(DUE) + timedelta(days=30)
    assert pr.created_by_key_id is None
    audit = db.session.scalars(select(AuditLog).where(AuditLog.target_id == pr.id)).one()
    assert (audit.action, audit.staff_email) == ("merchant.request.created", clerk.email)
    page = browser.get(f"/merchant/requests/{pr.id}")
    assert page.status_code == 200 and link_url(pr.id) in page.text
    assert f"{link_url(pr.id)}/qr.svg" in page.text
    assert (
        browser.get(f"{link_url(pr.id)}/qr.svg".removeprefix("https://portal.test")).status_code
        == 200
    )


def test_pasted_csv_lines(app, browser):
    token = csrf(browser, "/merchant/requests/new")
    pasted = "date;description;montant;référence\n03/10/2026;Pain;12,50;T-1\n2026-10-12;Vin;27,50;"
    no_rows = {"line_description": [], "line_amount": [], "line_date": [], "line_reference": []}
    pr = created(browser, statement_form(token, **no_rows, lines_csv=pasted))
    assert [(ln.date.isoformat(), ln.description, ln.amount, ln.reference)
            for ln in pr.statement_lines] == [
        ("2026-10-03", "Pain", 1250, "T-1"), ("2026-10-12", "Vin", 2750, None),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"amount": "600,00", "balance": "600,00", "line_amount": ["600,00"],
          "line_description": ["Tout"], "line_date": [""], "line_reference": [""]},
         "over your shop"),  # the ceiling of 500.00, as the API refuses it
        ({"amount": "45,00"}, "more than the balance"),
        ({"amount": "douze"}, "as a number"),
        ({"customer_email": "not-an-address"}, "valid e-mail"),
        ({"line_amount": ["12,50", "-2,50", "31,00", ""]}, "add up to the balance"),
        ({"lines_csv": "only;two"}, "Each pasted row"),
        ({"period_end": "2026-09-01"}, "period ends before"),
        ({"due_date": "soon"}, "YYYY-MM-DD"),
    ],
)  # fmt: skip
def test_refused_forms_create_nothing_and_say_why(app, browser, overrides, message):
    token = csrf(browser, "/merchant/requests/new")
    resp = browser.post("/merchant/requests", data=statement_form(token, **overrides))
    assert resp.status_code == 422
    assert message in resp.text
    assert db.session.scalar(select(func.count(PaymentRequest.id))) == 0
    assert db.session.scalar(select(func.count(AuditLog.id)).where(
        AuditLog.action == "merchant.request.created")) == 0  # fmt: skip
    # what was typed is kept
    assert 'value="Camille Martin"' in resp.text


def test_same_rules_as_the_api(app, browser, clerk, client):
    """The same body refused through the API gives the same code the form shows."""
    api = client.post("/api/v1/payment-requests", headers=clerk.merchant_key.headers, json={
        "kind": "statement", "currency": "EUR", "amount": 60000,
        "statement": {"balance": 60000}})  # fmt: skip
    assert api.status_code == 422 and api.json["error"]["code"] == "amount_exceeds_ceiling"


def test_wallet_top_ups_fixed_or_chosen(app, browser):
    token = csrf(browser, "/merchant/requests/new?kind=wallet_topup")
    base = {"csrf_token": token, "kind": "wallet_topup", "customer_name": "Jan",
            "customer_locale": "nl"}  # fmt: skip
    fixed = created(browser, {**base, "wallet_mode": "fixed", "amount": "20"})
    assert (fixed.kind, fixed.amount) == ("wallet_topup", 2000)
    chosen = created(browser, {**base, "wallet_mode": "chosen", "amount": "99",
                               "min_amount": "5", "max_amount": "100",
                               "suggested": ["10", "25,50", ""]})  # fmt: skip
    assert chosen.amount is None
    assert (chosen.wallet_min, chosen.wallet_max, chosen.wallet_suggested) == (
        500,
        10000,
        [1000, 2550],
    )
    bad = {**base, "wallet_mode": "chosen", "min_amount": "50", "max_amount": "10"}
    resp = browser.post("/merchant/requests", data=bad)
    assert resp.status_code == 422


def test_an_order_deposit(app, browser):
    token = csrf(browser, "/merchant/requests/new?kind=order_deposit")
    pr = created(browser, {
        "csrf_token": token, "kind": "order_deposit", "customer_name": "Ann",
        "order_reference": "CMD-88", "line_description": ["Gâteau de mariage", "Livraison"],
        "line_quantity": ["1", "2"], "line_unit_amount": ["150,00", "10"],
        "total": "170,00", "amount": "50,00", "allow_full_payment": "1",
    })  # fmt: skip
    assert (pr.kind, pr.amount, pr.order_total, pr.allow_full_payment) == (
        "order_deposit", 5000, 17000, True)  # fmt: skip
    assert [(ln.description, ln.quantity, ln.unit_amount) for ln in pr.order_lines] == [
        ("Gâteau de mariage", 1, 15000), ("Livraison", 2, 1000)]  # fmt: skip
    resp = browser.post("/merchant/requests", data={
        "csrf_token": token, "kind": "order_deposit", "total": "10", "amount": "50"})  # fmt: skip
    assert resp.status_code == 422 and "more than the order total" in resp.text


def test_the_preview_is_the_customers_page_in_their_language(app, browser):
    pr = created(browser, statement_form(csrf(browser, "/merchant/requests/new")))
    page = browser.get(f"/merchant/requests/{pr.id}/preview")
    assert page.status_code == 200
    assert 'lang="fr"' in page.text and "Payer" in page.text  # the customer's French page
    assert "Preview" in page.text  # the banner, in the clerk's own language
    assert "/pay" not in page.text  # nothing can be paid from it
    db.session.refresh(pr)
    assert pr.open_count == 0 and pr.first_opened_at is None  # not counted as an open


def test_send_by_email_and_sms(app, browser, clerk, smtp):
    pr = created(browser, statement_form(csrf(browser, "/merchant/requests/new")))
    token = csrf(browser, f"/merchant/requests/{pr.id}")
    resp = browser.post(f"/merchant/requests/{pr.id}/send", data={"csrf_token": token,
                                                                  "channel": "email"})  # fmt: skip
    assert resp.status_code == 303
    resp = browser.post(f"/merchant/requests/{pr.id}/send", data={
        "csrf_token": token, "channel": "sms", "to": "+32 470 12 34 56"})  # fmt: skip
    assert resp.status_code == 303
    assert resp.status_code == 303
    run_due_jobs()
    [mail] = smtp.messages
    assert mail["To"] == "camille@example.com"
    assert link_url(pr.id) in mail.get_body(("plain",)).get_content()
    deliveries = db.session.scalars(
        select(LinkDelivery).where(LinkDelivery.request_id == pr.id)
    ).all()
    assert sorted(d.channel for d in deliveries) == ["email", "sms"]
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.target_id == pr.id)).all()
    assert actions.count("merchant.request.sent") == 2
    # refused: a bad number, an unknown channel
    for data in ({"channel": "sms", "to": "12"}, {"channel": "fax"}):
        resp = browser.post(f"/merchant/requests/{pr.id}/send", data={"csrf_token": token, **data})
        assert resp.status_code == 422, data
    assert db.session.scalar(select(func.count(LinkDelivery.id))) == 2
