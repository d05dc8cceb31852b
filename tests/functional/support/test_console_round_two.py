"""The console as callers use it: search by what they quote, the merchant's own phone
country, "resend link" audited on the request, "resend receipt" asking for an address."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.jobs.models import Job
from portal.links import link_url
from portal.payments.models import Payment
from portal.support.models import AuditLog
from tests.factories import make_merchant, make_request, statement_body
from tests.functional.support.test_console import act, https_client, login, paid_request, staff


@pytest.fixture
def https(app):
    return https_client(app)


def found(https, q: str) -> str:
    return https.get("/support/search", query_string={"q": q}).text


def test_search_finds_what_callers_quote(https, app):
    m = make_merchant()
    body = statement_body(reference="INV-88", amount=12345)
    body["customer"]["name"] = "Jeanne Van den Broeck"
    pr, payment = paid_request(m, **{k: v for k, v in body.items() if k != "kind"})
    payment.card_last4 = "4821"
    db.session.commit()
    other = make_request(m, statement_body(reference="OTHER", amount=999))
    login(https, staff())
    number = payment.receipt_number
    assert number and number.startswith("R-")
    for q in [
        number,  # the receipt number as printed
        number.lower(),
        str(int(number[2:])),  # its number alone
        link_url(pr.id),  # a pasted link
        link_url(pr.id)[:-10],  # a link cut short: the id is still in it
        "Broeck",  # a last name
        "van den broeck",
        "4821",  # the card's last 4
        "123,45",  # an amount, as a Belgian says it
        "€ 123.45",
    ]:
        page = found(https, q)
        assert f"/support/requests/{pr.id}" in page, q
        assert f"/support/requests/{other.id}" not in page, q
    assert f"/support/requests/{pr.id}" not in found(https, "9999")
    assert f"/support/requests/{pr.id}" not in found(https, "Jeanne Dupont")


def test_phone_search_reads_the_number_in_the_merchants_country(https, app):
    belgian = make_merchant(name="BE shop")
    dutch = make_merchant(name="NL shop", country="NL")
    be_body, nl_body = statement_body(reference="BE-1"), statement_body(reference="NL-1")
    be_body["customer"]["phone"] = "+32 470 12 34 56"
    nl_body["customer"]["phone"] = "+31 6 12345678"
    be_pr, nl_pr = make_request(belgian, be_body), make_request(dutch, nl_body)
    login(https, staff())
    page = found(https, "06 12345678")  # a Dutch mobile, written the Dutch way
    assert f"/support/requests/{nl_pr.id}" in page and f"/support/requests/{be_pr.id}" not in page
    page = found(https, "0470 12 34 56")  # a Belgian one, the Belgian way
    assert f"/support/requests/{be_pr.id}" in page and f"/support/requests/{nl_pr.id}" not in page
    assert f"/support/requests/{nl_pr.id}" in found(https, "0031 6 12345678")


def test_a_merchant_country_is_checked(app):
    out = app.test_cli_runner().invoke(
        args=["merchant", "create", "--name", "X", "--currency", "EUR", "--country", "ZZ"]
    )
    assert out.exit_code != 0 and "unknown country" in out.output


def test_resend_link_is_audited_on_the_request(https, app):
    m = make_merchant()
    pr = make_request(m)
    login(https, staff("admin"))
    assert act(https, pr.id, "resend_link", "email").status_code == 303
    entry = db.session.scalars(select(AuditLog).where(AuditLog.action == "resend_link")).one()
    assert entry.target_id == pr.id and entry.details["channel"] == "email"
    page = https.get("/support/audit", query_string={"target": pr.id}).text
    assert "resend_link" in page.split("<tbody>")[1]


def test_resend_receipt_without_an_address_asks_for_one(https, app):
    m = make_merchant()
    body = statement_body()
    body["customer"].pop("email")
    pr, payment = paid_request(m, **{k: v for k, v in body.items() if k != "kind"})
    assert payment.receipt_email is None
    login(https, staff())
    jobs = db.session.query(Job).filter_by(kind="send_receipt").count()
    confirm = https.get(f"/support/requests/{pr.id}/confirm/resend_receipt?target={payment.id}")
    assert 'name="email"' in confirm.text
    refused = act(https, pr.id, "resend_receipt", payment.id)  # no address given
    assert refused.status_code == 422
    assert "no e-mail address" in refused.text and 'name="email"' in refused.text
    bad = https.post(
        f"/support/requests/{pr.id}/do/resend_receipt",
        data={"csrf_token": _token(confirm.text), "reason": "customer called",
              "target": payment.id, "email": "not an address"},
    )  # fmt: skip
    assert bad.status_code == 422 and "not valid" in bad.text
    assert db.session.query(Job).filter_by(kind="send_receipt").count() == jobs
    sent = https.post(
        f"/support/requests/{pr.id}/do/resend_receipt",
        data={"csrf_token": _token(confirm.text), "reason": "customer called",
              "target": payment.id, "email": "Jeanne@Example.be"},
    )  # fmt: skip
    assert sent.status_code == 303
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).receipt_email == "jeanne@example.be"
    assert db.session.query(Job).filter_by(kind="send_receipt").count() == jobs + 1
    entry = db.session.scalars(select(AuditLog).where(AuditLog.action == "resend_receipt")).one()
    assert entry.target_id == payment.id and entry.details["address_added"] is True
    # With an address on the payment, the form no longer asks.
    again = https.get(f"/support/requests/{pr.id}/confirm/resend_receipt?target={payment.id}")
    assert 'name="email"' not in again.text


def _token(html: str) -> str:
    from tests.functional.support.test_console import CSRF

    return CSRF.search(html).group(1)
