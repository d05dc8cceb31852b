"""The money rules as a customer, a merchant and a ledger meet them, through the served
pages and the real services: typed amounts, Enter, the replaced tab, minimums, line
allocation, refunds everywhere, the deposit's remainder, receipt numbers, typed outcomes."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.customer.forms import parse_amount
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.models import Event
from portal.links import link_token
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.payments.refunds import refund_payment
from portal.payments.services import apply_provider_payment, fulfil_payment, start_payment
from portal.providers.base import ProviderPayment
from tests.factories import deposit_body, make_merchant, make_request, statement_body, wallet_body
from tests.functional.customer.test_pages import csrf, page, pay

LINES = {
    "period_start": "2026-10-01",
    "period_end": "2026-10-31",
    "balance": 10000,
    "lines": [
        {"date": "2026-10-03", "description": "Bread", "amount": 5000, "reference": "T-881"},
        {"date": "2026-10-10", "description": "Credit", "amount": -1000, "reference": "C-12"},
        {"date": "2026-10-20", "description": "Wine", "amount": 6000, "reference": "T-902"},
    ],
}


def statement(merchant, **overrides):
    return make_request(merchant, statement_body(amount=10000, statement=LINES, **overrides))


def events(pr_id: str) -> list[Event]:
    return list(
        db.session.scalars(select(Event).where(Event.request_id == pr_id).order_by(Event.seq))
    )


def _spaces(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


# --- what a person types --------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "locale", "minor"),
    [
        ("30", "fr", 3000), ("30,00", "fr", 3000), ("30.00", "en", 3000), ("€ 30", "nl", 3000),
        ("30 €", "fr", 3000), ("EUR 30", "en", 3000), ("30,-", "nl", 3000),
        ("1 234,50", "fr", 123450), ("1\u202f234,50\u00a0€", "fr", 123450),
        ("1.234,50", "nl", 123450), ("1,234.50", "en", 123450), ("1.234", "nl", 123400),
    ],
)  # fmt: skip
def test_amounts_as_people_type_them(typed, locale, minor):
    assert parse_amount(typed, "EUR", locale) == minor


@pytest.mark.parametrize(
    "typed",
    ["1e3", "-30", "+30", "12abc34", "2 x 10", "12 34", "30,001", "1,2,3", "0", "0,00", "٣٠",
     "30..0", "(30)", "30 30", "1.234.567,891", "€€30", "30 USD"],
)  # fmt: skip
def test_anything_else_is_refused_not_guessed(typed):
    assert parse_amount(typed, "EUR", "fr") is None


def test_a_refused_amount_is_kept_marked_and_focused_with_the_range(client, merchant):
    pr = make_request(merchant, wallet_body())
    resp = pay(client, pr, amount="2 x 10")
    assert resp.status_code == 422
    text = _spaces(resp.text)
    assert "Veuillez saisir un montant entre 5,00 € et 500,00 €" in text
    field = re.search(r'<input id="amount"[^>]*>', resp.text).group(0)
    assert 'value="2 x 10"' in field and 'aria-invalid="true"' in field and "autofocus" in field
    assert db.session.query(Payment).count() == 0


def test_enter_pays_the_typed_amount_not_the_first_suggestion(client, merchant):
    pr = make_request(merchant, wallet_body())
    opened = page(client, pr)
    # The form's first submit button, which Enter presses, is the typed-amount one.
    form = re.search(r"<form method=\"post\".*?</form>", opened.text, re.S).group(0)
    first_button = re.search(r"<button[^>]*>", form).group(0)
    assert 'name="action"' in first_button and 'value="typed"' in first_button
    # What a browser sends on Enter: that button, and the typed amount.
    resp = client.post(
        f"/p/{link_token(pr.id)}/pay",
        data={"csrf_token": csrf(opened), "action": "typed", "amount": "30"},
    )
    assert resp.status_code == 303
    assert db.session.query(Payment).one().amount == 3000
    # A suggestion button pressed sends its own value and no "action".
    resp = client.post(
        f"/p/{link_token(pr.id)}/pay",
        data={"csrf_token": csrf(opened), "amount_choice": "2000", "amount": "30"},
    )
    assert resp.status_code == 303
    open_attempts = db.session.query(Payment).filter(Payment.status == "pending").all()
    assert [p.amount for p in open_attempts] == [2000]


# --- the replaced tab -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "heading", "words"),
    [
        ("en", "This payment was replaced", "replaced by a newer one"),
        ("fr", "Ce paiement a été remplacé", "remplacé par un plus récent"),
        ("nl", "Deze betaling werd vervangen", "vervangen door een nieuwere"),
    ],
)
def test_paying_in_a_replaced_tab_says_so(client, merchant, locale, heading, words):
    pr = make_request(merchant, statement_body(allow_partial=True))
    client.get(f"/p/{link_token(pr.id)}?lang={locale}")
    first = page(client, pr)
    old = client.post(
        f"/p/{link_token(pr.id)}/pay", data={"csrf_token": csrf(first), "amount": "20"}
    ).headers["Location"]
    old_form = client.get(old)
    # Another tab asks for another amount: the first attempt is replaced...
    client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": csrf(first), "amount": "30"})
    # ...and paying in the first tab charges nothing and says what happened.
    resp = client.post(
        old,
        data={"csrf_token": csrf(old_form), "card_number": "4242424242424242",
              "expiry": "12/39", "cvc": "123"},
        follow_redirects=True,
    )  # fmt: skip
    text = _spaces(resp.text)
    assert heading in text and words in text
    assert "declined" not in text and "refusée" not in text and "geweigerd" not in text
    db.session.expire_all()
    assert db.session.get(PaymentRequest, pr.id).amount_paid == 0


# --- minimums -------------------------------------------------------------------------


def test_a_partial_payment_below_the_minimum_is_refused(client, merchant):
    pr = make_request(merchant, statement_body(allow_partial=True))
    resp = pay(client, pr, amount="0,01")
    assert resp.status_code == 422
    assert "€ 0,50" in _spaces(resp.text)  # Dutch customer: the range starts at the minimum
    resp = pay(client, pr, amount="124,80")  # would leave €0.20, which nobody could pay online
    assert resp.status_code == 422
    assert "minstens € 0,50" in _spaces(resp.text)
    assert pay(client, pr, amount="124,50").status_code == 303  # leaves exactly the minimum


def test_the_merchants_own_minimum_applies_when_higher(client):
    m = make_merchant()
    db.session.get(Merchant, m.id).min_payment = 1000
    db.session.commit()
    pr = make_request(m, statement_body(allow_partial=True))
    assert pay(client, pr, amount="5,00").status_code == 422
    created = client.post(
        "/api/v1/payment-requests", json=wallet_body(wallet={"min_amount": 500}), headers=m.headers
    )
    assert created.status_code == 422
    assert created.json["error"]["code"] == "amount_below_minimum"
    assert created.json["error"]["field"] == "wallet.min_amount"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (statement_body(amount=49), "amount"),
        (deposit_body(amount=1), "amount"),
        (wallet_body(amount=10), "amount"),
        (wallet_body(wallet={"min_amount": 1, "max_amount": 5000}), "wallet.min_amount"),
    ],
)
def test_the_api_refuses_requests_below_the_providers_minimum(client, merchant, body, field):
    body = {**body}
    if body.get("statement"):
        body["statement"] = {k: v for k, v in body["statement"].items() if k != "balance"}
        body["statement"]["lines"] = []
    resp = client.post("/api/v1/payment-requests", json=body, headers=merchant.headers)
    assert resp.status_code == 422, resp.json
    assert resp.json["error"] == {
        "code": "amount_below_minimum",
        "message": resp.json["error"]["message"],
        "field": field,
    }
    assert "€0.50" in resp.json["error"]["message"]


# --- line allocation -------------------------------------------------------------------


def test_partial_payments_and_a_refund_letter_only_what_they_settled(app, merchant):
    pr = statement(merchant, allow_partial=True)
    first = start_payment(pr, 2000)
    fulfil_payment(first.id)
    db.session.commit()
    second = start_payment(db.session.get(PaymentRequest, pr.id), None)
    assert second.amount == 8000
    fulfil_payment(second.id)
    db.session.commit()
    refund_payment(db.session.get(Merchant, merchant.id), second.id, 1000, "wine returned")
    db.session.commit()
    succeeded = [e for e in events(pr.id) if e.type == "payment.succeeded"]
    assert [a for a in succeeded[0].data["allocation"]] == [
        {"position": 0, "reference": "T-881", "amount": 3000, "settled": False, "remaining": 2000},
        {"position": 1, "reference": "C-12", "amount": -1000, "settled": True, "remaining": 0},
    ]
    assert succeeded[1].data["allocation"] == [
        {"position": 0, "reference": "T-881", "amount": 2000, "settled": True, "remaining": 0},
        {"position": 2, "reference": "T-902", "amount": 6000, "settled": True, "remaining": 0},
    ]
    (refunded,) = [e for e in events(pr.id) if e.type == "payment.refunded"]
    assert refunded.data["allocation"] == [
        {"position": 2, "reference": "T-902", "amount": -1000, "settled": False, "remaining": 1000}
    ]
    lines = refunded.data["payment_request"]["statement"]["lines"]
    assert [(ln["reference"], ln["amount_settled"], ln["settled"]) for ln in lines] == [
        ("T-881", 5000, True), ("C-12", -1000, True), ("T-902", 5000, False),
    ]  # fmt: skip
    # The lines hold exactly the money paid, less the money refunded.
    assert sum(ln["amount_settled"] for ln in lines) == 10000 - 1000


def test_a_statement_without_lines_has_an_empty_allocation(app, merchant):
    pr = make_request(merchant, statement_body(statement=None))
    fulfil_payment(start_payment(pr, None).id)
    db.session.commit()
    (succeeded,) = [e for e in events(pr.id) if e.type == "payment.succeeded"]
    assert succeeded.data["allocation"] == [] and succeeded.data["unallocated"] == 12500


# --- refunds everywhere -----------------------------------------------------------------


def test_a_refund_shows_on_the_page_the_receipt_the_console_and_in_an_email(client, merchant, smtp):
    pr = make_request(merchant, statement_body(customer={"name": "Jan", "email": "jan@example.com",
                                                          "locale": "fr"}))  # fmt: skip
    assert pay(client, pr).status_code == 303
    payment = db.session.query(Payment).one()
    refund_payment(db.session.get(Merchant, merchant.id), payment.id, 2500, "damaged")
    db.session.commit()
    text = _spaces(page(client, pr).text)
    assert "25,00 € vous ont été remboursés" in text
    receipt = _spaces(page(client, pr, f"/receipt/{payment.id}").text)
    assert "Remboursé le" in receipt and "25,00 €" in receipt and "Payé net" in receipt
    assert "100,00 €" in receipt
    run_due_jobs()
    notices = [m for m in smtp.messages if "remboursé" in m["Subject"]]
    assert len(notices) == 1
    body = _spaces(notices[0].get_body(("plain",)).get_content())
    assert "25,00 €" in body and "Visa **** 4242" in body and "5 à 10 jours ouvrés" in body


def test_the_dashboard_shows_money_net_of_refunds(app, merchant):
    from portal.support.auth import create_staff
    from portal.support.dashboard import stats

    pr = make_request(merchant)
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()
    refund_payment(db.session.get(Merchant, merchant.id), payment.id, 2500, "damaged")
    user, _ = create_staff("agent@example.com", "support")
    db.session.commit()
    collected = stats(user, payment.created_at.replace(hour=0, minute=0)).collected["EUR"]
    assert (collected.gross, collected.refunded, collected.net) == (12500, 2500, 10000)


# --- the deposit's remainder -----------------------------------------------------------


def test_the_deposit_page_says_what_is_left_after_this_deposit(client, merchant):
    pr = make_request(merchant, deposit_body(customer={"name": "A", "locale": "en"}))
    text = page(client, pr).text
    left = re.search(r"Left to pay on collection</dt><dd>([^<]+)</dd>", text).group(1)
    assert left == "€70.00"  # €100.00 order, €30.00 deposit
    pay(client, pr)
    text = page(client, pr).text
    assert re.search(r"Left to pay on collection</dt><dd>([^<]+)</dd>", text).group(1) == "€70.00"


def test_after_paying_the_whole_order_nothing_is_left(client, merchant):
    pr = make_request(
        merchant, deposit_body(allow_full_payment=True, customer={"name": "A", "locale": "en"})
    )
    pay(client, pr, full_order="1")
    text = page(client, pr).text
    assert re.search(r"Left to pay on collection</dt><dd>([^<]+)</dd>", text).group(1) == "€0.00"


# --- receipt numbers and typed outcomes -----------------------------------------------


def test_receipt_numbers_follow_one_sequence_per_merchant(app):
    a, b = make_merchant(name="A"), make_merchant(name="B")
    numbers = []
    for m in (a, a, b, a):
        pr = make_request(m)
        payment = start_payment(pr, None)
        fulfil_payment(payment.id)
        db.session.commit()
        numbers.append(db.session.get(Payment, payment.id).receipt_number)
    assert numbers == ["R-000001", "R-000002", "R-000001", "R-000003"]


def test_a_transition_the_table_refuses_is_flagged_not_a_500(app, merchant, monkeypatch):
    from portal import states

    pr = make_request(merchant)
    payment = start_payment(pr, None)
    db.session.commit()
    # The table disagrees with what the service does (a bug, or rows changed by hand).
    monkeypatch.setitem(states.PAYMENT_TRANSITIONS, states.PaymentStatus.PENDING, frozenset())
    state = ProviderPayment(status="succeeded", amount=payment.amount, currency="EUR")
    assert apply_provider_payment(payment.id, state, source="test") == "flagged"
    db.session.commit()
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert payment.flagged and "cannot go from pending to succeeded" in payment.flagged_reason
    assert payment.status == "pending" and events(pr.id) == []


def test_the_support_console_shows_refunds_and_money_not_applied(app, merchant):
    from tests.functional.support.test_console import https_client, login, staff

    pr = make_request(merchant)
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()
    refund_payment(db.session.get(Merchant, merchant.id), payment.id, 2500, "damaged")
    # A second payment of the same request, which was already paid: given back.
    late = Payment(request_id=pr.id, merchant_id=merchant.id, amount=12500, currency="EUR",
                   status="canceled", provider="sandbox", provider_data={}, applied=False,
                   amount_refunded=0)  # fmt: skip
    db.session.add(late)
    db.session.commit()
    assert fulfil_payment(late.id) is False
    db.session.commit()
    run_due_jobs()
    client = https_client(app)
    login(client, staff())
    text = _spaces(client.get(f"/support/requests/{pr.id}").text)
    assert "paid · partly refunded" in text
    assert "Net paid</dt><dd>€100.00" in text
    assert "Money not applied" in text and "automatic: request_closed" in text
    assert "merchant: damaged" in text


def test_late_money_that_no_longer_fits_a_partly_paid_request_is_given_back(app, merchant):
    """A declined attempt paid after all in a stale tab, once another payment left too little
    due for it: refunded in full, the request's books untouched."""
    pr = make_request(merchant, statement_body(allow_partial=True))  # €125.00 due
    declined = start_payment(pr, 5000)
    state = ProviderPayment(status="failed", amount=5000, currency="EUR")
    apply_provider_payment(declined.id, state, source="test")
    other = start_payment(db.session.get(PaymentRequest, pr.id), 10000)
    fulfil_payment(other.id)  # €25.00 left
    db.session.commit()
    late = ProviderPayment(status="succeeded", amount=5000, currency="EUR")
    assert apply_provider_payment(declined.id, late, source="test") == "refund_due"
    db.session.commit()
    run_due_jobs()
    db.session.expire_all()
    pr = db.session.get(PaymentRequest, pr.id)
    assert (pr.status, pr.amount_paid, pr.amount_refunded) == ("partially_paid", 10000, 0)
    declined = db.session.get(Payment, declined.id)
    assert declined.status == "refunded" and not declined.applied
    assert declined.refunds[0].reason == "superseded"
    assert [e.type for e in events(pr.id) if e.payment_id == declined.id] == [
        "payment.failed", "payment.refunded",
    ]  # fmt: skip


def test_a_replaced_attempt_is_never_charged_even_when_its_page_is_posted(app, merchant):
    """The card page checks the attempt before charging, but a second tab may replace it in
    between: the charge itself checks again, under the locks."""
    from portal.payments.services import confirm_payment

    pr = make_request(merchant, statement_body(allow_partial=True))
    old = start_payment(pr, 2000)
    start_payment(db.session.get(PaymentRequest, pr.id), 3000)
    db.session.commit()
    assert confirm_payment(old.id, "4242424242424242", source="test") is None
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Payment, old.id).status == "canceled"
    assert db.session.get(PaymentRequest, pr.id).amount_paid == 0
