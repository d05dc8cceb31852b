"""The customer's account page: what it shows, what it refuses, and one payment for several
requests settled once, each request with its own events and allocation."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.worker import run_due_jobs
from portal.ledger.models import Event
from portal.links import account_token, sign
from portal.payment_requests.models import PaymentRequest
from portal.payments.groups import Selection, fulfil_group, start_group
from portal.payments.models import Payment, PaymentGroup
from portal.payments.refunds import refund_payment
from portal.payments.services import PaymentRefused, fulfil_payment, start_payment
from tests.factories import deposit_body, make_merchant, make_request, statement_body, wallet_body

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
REF = "C-9"


def customer(reference: str = REF, **extra):
    return {"name": "Jan Peeters", "email": "jan@example.com", "reference": reference, **extra}


def statement(who: str = REF, **overrides):
    lines = [
        {"date": "2026-10-03", "description": "Bread", "amount": 3000, "reference": "L1"},
        {"date": "2026-10-20", "description": "Wine", "amount": 4500, "reference": "L2"},
    ]
    body = statement_body(
        amount=7500, allow_partial=True, customer=customer(who),
        statement={"balance": 7500, "lines": lines}, **overrides,
    )  # fmt: skip
    return body


def deposit(who: str = REF, **overrides):
    return deposit_body(**{"amount": 5000, "customer": customer(who), **overrides})


def setup_account(m, reference: str = REF):
    st = make_request(m, statement(reference))
    dep = make_request(m, deposit(reference))
    return st, dep


def page(client, m, reference: str = REF, **query):
    url = f"/a/{account_token(m.id, reference)}"
    answer = client.get(url, query_string=query)
    return url, answer


def pay_form(client, url, answer, **fields):
    data = {"csrf_token": CSRF.search(answer.text).group(1), **fields}
    return client.post(f"{url}/pay", data=data)


def test_the_page_lists_open_requests_and_lines(app, client):
    m = make_merchant()
    st, dep = setup_account(m)
    make_request(m, statement("OTHER", reference="NOT-MINE"))
    _url, answer = page(client, m)
    assert answer.status_code == 200
    assert "STMT-1" in answer.text and "DEP-1" in answer.text and "NOT-MINE" not in answer.text
    line_ids = [ln.id for ln in st.statement_lines]
    for line_id in line_ids:
        assert f'name="line" value="{line_id}"' in answer.text
    assert f'name="request" value="{dep.id}"' in answer.text
    assert answer.headers["Cache-Control"] == "no-store"


def test_tampered_and_foreign_tokens_are_a_plain_404(app, client):
    m = make_merchant()
    setup_account(m)
    token = account_token(m.id, REF)
    for bad in (token[:-2] + "xx", token + "x", "nonsense", sign(m.id, "portal.payment-link.v1")):
        assert client.get(f"/a/{bad}").status_code == 404
    other_key = sign("bWVyX3g", "portal.account-link.v1")  # "mer_x" unknown merchant
    assert client.get(f"/a/{other_key}").status_code == 404


def test_one_payment_for_a_line_and_a_deposit(app, client):
    m = make_merchant()
    st, dep = setup_account(m)
    first_line = st.statement_lines[0]
    url, answer = page(client, m, lang="en")
    started = pay_form(client, url, answer, line=str(first_line.id), request=dep.id)
    assert started.status_code == 303, started.text
    checkout = started.headers["Location"]
    card_page = client.get(checkout)
    assert "€80.00" in card_page.text
    paid = client.post(checkout, data={"csrf_token": CSRF.search(card_page.text).group(1), **CARD})
    assert paid.status_code == 303
    result = client.get(paid.headers["Location"])
    assert "Payment received" in result.text and "Bread" in result.text
    group = db.session.scalars(select(PaymentGroup)).one()
    assert group.status == "succeeded" and group.amount == 8000
    members = {m.request_id: m for m in group.members}
    assert members[st.id].amount == 3000 and members[dep.id].amount == 5000
    db.session.expire_all()
    st_now, dep_now = db.session.get(PaymentRequest, st.id), db.session.get(PaymentRequest, dep.id)
    assert st_now.status == "partially_paid" and st_now.amount_paid == 3000
    assert [ln.amount_settled for ln in st_now.statement_lines] == [3000, 0]
    assert dep_now.status == "paid" and dep_now.amount_paid == 5000
    events = db.session.scalars(select(Event).order_by(Event.id)).all()
    by_request = {(e.request_id, e.type) for e in events}
    assert (st.id, "payment.succeeded") in by_request and (
        dep.id,
        "payment.succeeded",
    ) in by_request
    assert (dep.id, "payment_request.paid") in by_request
    assert (st.id, "payment_request.paid") not in by_request
    receipt_jobs = db.session.scalars(select(Job.kind)).all()
    assert "send_receipt" not in receipt_jobs  # one receipt for the group (not per member)
    receipt = client.get(f"{url}/receipt/{group.id}")
    assert receipt.status_code == 200 and "Bread" in receipt.text and "DEP-1" in receipt.text
    pdf = client.get(f"{url}/receipt/{group.id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="receipt-{group.id}.pdf"'


@pytest.mark.parametrize(
    "fields",
    [
        {"request": "pr_notmine"},
        {"line": "999999"},
        {"line": "abc"},
        {"topup": "pr_nothing", "topup_amount": "10"},
    ],
)
def test_foreign_and_tampered_ids_are_refused(app, client, fields):
    m = make_merchant()
    setup_account(m)
    url, answer = page(client, m, lang="en")
    refused = pay_form(client, url, answer, **fields)
    assert refused.status_code == 422
    assert db.session.scalars(select(PaymentGroup)).first() is None


def test_another_customers_request_is_refused(app, client):
    m = make_merchant()
    setup_account(m)
    theirs = make_request(m, deposit("SOMEONE-ELSE", reference="THEIRS"))
    other_shop = make_merchant(name="Other")
    foreign = make_request(other_shop, deposit(REF, reference="FOREIGN"))
    url, answer = page(client, m, lang="en")
    for request_id in (theirs.id, foreign.id):
        refused = pay_form(client, url, answer, request=request_id)
        assert refused.status_code == 422 and "can no longer be paid here" in refused.text
    assert db.session.scalars(select(Payment)).first() is None


def test_a_form_without_its_token_is_refused(app, client):
    m = make_merchant()
    st, _ = setup_account(m)
    url, _answer = page(client, m)
    assert client.post(f"{url}/pay", data={"request": st.id}).status_code == 400
    _other_url, other = page(client, m, "SOMEONE")
    stolen = CSRF.search(other.text)
    assert (
        stolen is None
        or client.post(
            f"{url}/pay", data={"request": st.id, "csrf_token": stolen.group(1)}
        ).status_code
        == 400
    )


def test_minimum_and_ceiling_apply_to_the_total(app, client):
    m = make_merchant(ceiling="100.00")
    small = make_request(m, deposit(amount=2000, reference="SMALL"))
    big = make_request(m, deposit(amount=6000, reference="BIG"))
    other = make_request(m, deposit(amount=6000, reference="BIG2"))
    m.merchant.min_payment = 3000  # raised since: €20.00 alone is too little now
    db.session.commit()
    url, answer = page(client, m, lang="en")
    low = pay_form(client, url, answer, request=small.id)
    assert low.status_code == 422 and "at least €30.00" in low.text
    high = pay_form(client, url, answer, request=[big.id, other.id])
    assert high.status_code == 422 and "€100.00" in high.text
    # The small one goes with a bigger one: the total is what counts.
    together = pay_form(client, url, answer, request=[small.id, big.id])
    assert together.status_code == 303
    assert db.session.scalars(select(PaymentGroup)).one().amount == 8000


def test_nothing_ticked_and_bad_amounts(app, client):
    m = make_merchant()
    setup_account(m)
    wallet = make_request(m, wallet_body(customer=customer()))
    url, answer = page(client, m, lang="fr")
    assert pay_form(client, url, answer).status_code == 422
    bad = pay_form(client, url, answer, topup=wallet.id, topup_amount="12.34.5")
    assert bad.status_code == 422
    too_low = pay_form(client, url, answer, topup=wallet.id, topup_amount="1")
    assert too_low.status_code == 422
    missing = pay_form(client, url, answer, topup=wallet.id)
    assert missing.status_code == 422
    ok = pay_form(client, url, answer, topup=wallet.id, topup_amount="12,50")
    assert ok.status_code == 303
    assert db.session.scalars(select(PaymentGroup)).one().amount == 1250
    email = pay_form(client, url, answer, topup=wallet.id, topup_amount="12,50", email="nope")
    assert email.status_code == 422


def test_a_second_click_reuses_the_attempt_and_another_choice_replaces_it(app, merchant):
    st, dep = setup_account(merchant)
    first = start_group(merchant.merchant, REF, Selection(requests=frozenset({dep.id})))
    again = start_group(merchant.merchant, REF, Selection(requests=frozenset({dep.id})))
    assert again.id == first.id
    both = start_group(merchant.merchant, REF, Selection(requests=frozenset({dep.id, st.id})))
    db.session.commit()
    assert both.id != first.id
    db.session.refresh(first)
    assert first.status == "canceled" and {m.status for m in first.members} == {"canceled"}
    assert both.amount == 12500


def test_a_request_paid_elsewhere_meanwhile_is_refunded_not_applied(app, merchant):
    st, dep = setup_account(merchant)
    group = start_group(merchant.merchant, REF, Selection(requests=frozenset({dep.id, st.id})))
    db.session.commit()
    group_id = group.id
    # The deposit is paid from its own link meanwhile: its member attempt is closed.
    single = start_payment(db.session.get(PaymentRequest, dep.id), None)
    fulfil_payment(single.id)
    db.session.commit()
    assert fulfil_group(group_id) == "succeeded"
    db.session.commit()
    members = {m.request_id: m for m in db.session.get(PaymentGroup, group_id).members}
    assert members[st.id].applied and not members[dep.id].applied
    assert members[dep.id].refund_due == "request_closed"
    assert db.session.get(PaymentRequest, dep.id).amount_paid == 5000  # never twice
    assert db.session.get(PaymentRequest, st.id).status == "paid"
    assert db.session.scalars(select(Job).where(Job.kind == "refund_unapplied")).one()


def test_a_member_is_refunded_on_its_own(app, merchant):
    st, dep = setup_account(merchant)
    group = start_group(merchant.merchant, REF, Selection(requests=frozenset({dep.id, st.id})))
    db.session.commit()
    fulfil_group(group.id)
    db.session.commit()
    member = next(m for m in group.members if m.request_id == st.id)
    refund = refund_payment(merchant.merchant, member.id, 4500)
    db.session.commit()
    assert refund.amount == 4500
    pr = db.session.get(PaymentRequest, st.id)
    assert pr.amount_refunded == 4500
    assert [ln.amount_settled for ln in pr.statement_lines] == [3000, 0]


def test_a_declined_card_fails_every_member(app, client):
    m = make_merchant()
    st, dep = setup_account(m)
    url, answer = page(client, m, lang="en")
    started = pay_form(client, url, answer, request=[st.id, dep.id])
    checkout = started.headers["Location"]
    card_page = client.get(checkout)
    declined = {**CARD, "card_number": "4000 0000 0000 0002"}
    paid = client.post(checkout, data={"csrf_token": CSRF.search(card_page.text).group(1),
                                       **declined})  # fmt: skip
    result = client.get(paid.headers["Location"])
    assert "did not go through" in result.text
    group = db.session.scalars(select(PaymentGroup)).one()
    assert group.status == "failed" and {m.status for m in group.members} == {"failed"}
    assert client.get(f"{url}/receipt/{group.id}").status_code == 404
    assert client.get(f"{url}/receipt/{group.id}.pdf").status_code == 404


def test_shares_must_be_open_requests(app, merchant):
    _st, _ = setup_account(merchant)
    with pytest.raises(PaymentRefused) as refused:
        start_group(merchant.merchant, REF, Selection(requests=frozenset({"pr_x"})))
    assert refused.value.code == "not_payable"


@pytest.mark.parametrize("locale", ["en", "de"])
def test_one_receipt_email_lists_each_request_and_line(app, merchant, smtp, locale):
    st, dep = setup_account(merchant)
    line = st.statement_lines[0].id
    chosen = Selection(requests=frozenset({dep.id}), lines=frozenset({line}))
    group = start_group(merchant.merchant, REF, chosen, locale=locale)
    db.session.commit()
    fulfil_group(group.id)
    db.session.commit()
    assert fulfil_group(group.id) == "already settled"  # a repeat changes nothing
    db.session.commit()
    run_due_jobs()
    [mail] = smtp.messages
    assert mail["X-Envelope-To"] == "jan@example.com"
    text = mail.get_body(("plain",)).get_content()
    numbers = [m.receipt_number for m in db.session.get(PaymentGroup, group.id).members]
    for expected in ("STMT-1", "DEP-1", "Bread", f"/receipt/{group.id}", *numbers):
        assert expected in text
    assert ("80,00" if locale == "de" else "80.00") in str(mail["Subject"])
    [pdf] = [
        part for part in mail.iter_attachments() if part.get_content_type() == "application/pdf"
    ]
    assert pdf.get_content().startswith(b"%PDF")
    run_due_jobs()
    assert len(smtp.messages) == 1


@pytest.mark.parametrize(
    ("locale", "heading", "button"),
    [
        ("fr", "Votre compte chez Test Shop", "Payer les éléments cochés"),
        ("nl", "Uw account bij Test Shop", "De aangevinkte posten betalen"),
        ("de", "Ihr Konto bei Test Shop", "Die markierten Posten bezahlen"),
    ],
)
def test_the_page_speaks_the_customers_language(app, client, locale, heading, button):
    m = make_merchant()
    setup_account(m)
    _url, answer = page(client, m, lang=locale)
    assert f'lang="{locale}"' in answer.text
    assert heading in answer.text and button in answer.text


def checkout_of(client, url, answer, **fields):
    started = pay_form(client, url, answer, **fields)
    assert started.status_code == 303, started.text
    checkout = started.headers["Location"]
    return checkout, CSRF.search(client.get(checkout).text).group(1)


def test_three_d_secure_and_a_mistyped_card(app, client):
    m = make_merchant()
    st, dep = setup_account(m)
    url, answer = page(client, m, lang="en")
    checkout, csrf = checkout_of(client, url, answer, request=[st.id, dep.id])
    typo = client.post(checkout, data={"csrf_token": csrf, **CARD, "card_number": "4242"})
    assert typo.status_code == 422 and "check the card number" in typo.text
    secure = client.post(checkout, data={"csrf_token": csrf, **CARD,
                                         "card_number": "4000 0027 6000 3184"})  # fmt: skip
    assert secure.status_code == 303 and secure.headers["Location"].endswith("/3ds")
    step = client.get(secure.headers["Location"])
    assert "€125.00" in step.text
    done = client.post(secure.headers["Location"], data={"csrf_token": csrf, "decision": "approve"})
    assert done.status_code == 303
    group = db.session.scalars(select(PaymentGroup)).one()
    assert group.status == "succeeded" and {p.status for p in group.members} == {"succeeded"}
    # Settled: the checkout leads to the result, a second submission changes nothing.
    assert client.get(checkout).status_code == 303
    again = client.post(checkout, data={"csrf_token": csrf, **CARD})
    assert again.status_code == 303
    assert db.session.get(PaymentRequest, st.id).amount_paid == 7500


def test_the_provider_away_changes_nothing(app, client, monkeypatch):
    from portal.providers.base import ProviderError
    from portal.providers.sandbox import SandboxProvider

    m = make_merchant()
    st, _dep = setup_account(m)
    url, answer = page(client, m, lang="en")
    checkout, csrf = checkout_of(client, url, answer, request=st.id)

    def away(*args, **kwargs):
        raise ProviderError("down")

    for method in ("submit", "checkout_page", "prepare"):
        monkeypatch.setattr(SandboxProvider, method, away)
    assert client.get(checkout).status_code == 503
    assert client.post(checkout, data={"csrf_token": csrf, **CARD}).status_code == 503
    dep_pick = pay_form(client, url, answer, request=_dep.id)
    assert dep_pick.status_code == 503 and "did not answer" in dep_pick.text
    group = db.session.scalars(select(PaymentGroup)).one()
    assert group.status == "pending" and db.session.get(PaymentRequest, st.id).amount_paid == 0


def test_a_replaced_attempt_the_provider_had_paid_is_applied(app, merchant, monkeypatch):
    from portal.providers.base import ProviderPayment
    from portal.providers.sandbox import SandboxProvider

    st, dep = setup_account(merchant)
    first = start_group(merchant.merchant, REF, Selection(requests=frozenset({dep.id})))
    db.session.commit()

    def too_late(self, payment):
        return ProviderPayment(status="succeeded", amount=payment.amount, currency="EUR")

    monkeypatch.setattr(SandboxProvider, "cancel", too_late)
    with pytest.raises(PaymentRefused) as refused:
        start_group(merchant.merchant, REF, Selection(requests=frozenset({st.id, dep.id})))
    assert refused.value.code == "changed"
    db.session.commit()  # what the boundary does for "changed"
    assert db.session.get(PaymentGroup, first.id).status == "succeeded"
    assert db.session.get(PaymentRequest, dep.id).status == "paid"


def test_an_amount_the_provider_changed_is_flagged_not_applied(app, merchant):
    from portal.payments.groups import apply_group_state, lock_group
    from portal.providers.base import ProviderPayment

    st, dep = setup_account(merchant)
    group = start_group(merchant.merchant, REF, Selection(requests=frozenset({st.id, dep.id})))
    db.session.commit()
    prs, group, members = lock_group(group.id)
    processing = ProviderPayment(status="processing", amount=group.amount, currency="EUR")
    assert apply_group_state(prs, group, members, processing, source="test") == "processing"
    assert {p.status for p in members} == {"processing"}
    assert apply_group_state(prs, group, members, processing, source="test") == "processing"
    wrong = ProviderPayment(status="succeeded", amount=100, currency="EUR")
    assert apply_group_state(prs, group, members, wrong, source="test") == "flagged"
    db.session.commit()
    assert all(p.flagged for p in db.session.get(PaymentGroup, group.id).members)
    assert db.session.get(PaymentRequest, st.id).amount_paid == 0


def test_groups_need_a_provider_that_can_charge_them(app, client, monkeypatch):
    """A provider that cannot charge one intent for several requests (none today: the
    sandbox and Stripe both can) makes the page say so."""
    from portal.payments import groups

    monkeypatch.setattr(groups, "GROUP_PROVIDERS", ("sandbox",))
    m = make_merchant()
    st, _ = setup_account(m)
    app.config["PORTAL_PAYMENT_PROVIDER"] = "stripe"
    url, answer = page(client, m, lang="en")
    refused = pay_form(client, url, answer, request=st.id)
    assert refused.status_code == 422 and "not available here yet" in refused.text


def test_other_requests_and_groups_are_not_reachable(app, client, merchant):
    st, _dep = setup_account(merchant)
    theirs = make_request(merchant, deposit("SOMEONE", reference="THEIRS"))
    group = start_group(merchant.merchant, "SOMEONE", Selection(requests=frozenset({theirs.id})))
    db.session.commit()
    url, answer = page(client, merchant, lang="en")
    for path in (f"/return/{group.id}", f"/receipt/{group.id}", "/checkout/pg_nothing"):
        assert client.get(url + path).status_code == 404
    other_shop = make_merchant(name="Other")
    foreign_url = f"/a/{account_token(other_shop.id, 'SOMEONE')}"
    assert client.get(f"{foreign_url}/return/{group.id}").status_code == 404
    # A cross-site form is refused before anything is read.
    csrf = CSRF.search(answer.text).group(1)
    cross = client.post(f"{url}/pay", data={"csrf_token": csrf, "request": st.id},
                        headers={"Origin": "https://evil.example"})  # fmt: skip
    assert cross.status_code == 400
    # A free top-up is chosen with its amount, not as a whole request; nor past its maximum.
    wallet = make_request(merchant, wallet_body(customer=customer()))
    _url, answer = page(client, merchant, lang="en")
    assert pay_form(client, url, answer, request=wallet.id).status_code == 422
    high = pay_form(client, url, answer, topup=wallet.id, topup_amount="600")
    assert high.status_code == 422 and "between €5.00 and €500.00" in high.text


def test_account_tokens_that_are_not_ours(app):
    from portal.links import ACCOUNT_SALT, account_from_token

    assert account_from_token(sign("a", ACCOUNT_SALT)) is None  # not base64
    assert account_from_token(sign("bm9uZXdsaW5l", ACCOUNT_SALT)) is None  # "nonewline"
    assert account_from_token("x" * 401) is None


def test_expired_requests_are_not_offered_and_late_money_goes_back(app, client, merchant):
    from datetime import timedelta

    from portal.db_types import utcnow

    st, dep = setup_account(merchant)
    group = start_group(merchant.merchant, REF, Selection(requests=frozenset({st.id, dep.id})))
    db.session.commit()
    # The deposit's link expires before the money lands (the periodic job wrote it).
    expired = db.session.get(PaymentRequest, dep.id)
    expired.expires_at, expired.status = utcnow() - timedelta(minutes=1), "expired"
    db.session.commit()
    url, answer = page(client, merchant, lang="en")
    assert "DEP-1" not in answer.text and "STMT-1" in answer.text
    assert pay_form(client, url, answer, request=dep.id).status_code == 422
    fulfil_group(group.id)
    db.session.commit()
    members = {m.request_id: m for m in db.session.get(PaymentGroup, group.id).members}
    assert members[st.id].applied and members[dep.id].refund_due == "request_closed"
    assert db.session.get(PaymentRequest, dep.id).amount_paid == 0


def test_a_reusable_top_up_link_is_paid_through_its_own_link(app, client, merchant):
    """A reusable top-up and the children it makes are never offered on the account page
    (nothing is owed on them, and the parent must never be paid itself): ticking one is
    refused like any request that is not the customer's to pay here."""
    st = make_request(merchant, statement())
    parent = make_request(
        merchant, wallet_body(reusable=True, reference="CARD-1", customer=customer())
    )
    url, answer = page(client, merchant, lang="en")
    assert "STMT-1" in answer.text and "CARD-1" not in answer.text
    assert parent.id not in answer.text
    assert pay_form(client, url, answer, topup=parent.id, topup_amount="20").status_code == 422
    assert pay_form(client, url, answer, request=parent.id).status_code == 422
    assert db.session.get(PaymentRequest, parent.id).amount_paid == 0
    assert db.session.scalars(select(Payment).where(Payment.request_id == parent.id)).all() == []
    assert st.id in answer.text
