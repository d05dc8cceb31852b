"""Double clicks and second tabs on the account page, really raced: threads against a
served portal on SQLite and PostgreSQL. Whatever the timing, the one payment is charged
once and each request settled once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import select

from portal.extensions import db
from portal.ledger.models import Event
from portal.links import account_token
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment, PaymentGroup
from tests.factories import make_merchant
from tests.functional.account.test_account_page import CARD, CSRF, REF, setup_account
from tests.functional.payments.test_races import race
from tests.servers import serve_wsgi


@pytest.fixture
def served(app) -> Iterator[str]:
    db.session.commit()
    app.config["RATELIMIT_ENABLED"] = False
    with serve_wsgi(app) as url:
        yield url


def tab(url: str, merchant_id: str) -> tuple[requests.Session, str, str]:
    session = requests.Session()
    link = f"{url}/a/{account_token(merchant_id, REF)}"
    page = session.get(link, timeout=30)
    assert page.status_code == 200, page.text
    return session, link, CSRF.search(page.text).group(1)


def start(url: str, opened: tuple[requests.Session, str, str], fields: dict) -> str | int:
    session, link, csrf = opened
    answer = session.post(f"{link}/pay", data={"csrf_token": csrf, **fields},
                          allow_redirects=False, timeout=60)  # fmt: skip
    if answer.status_code != 303:
        return answer.status_code
    return url + answer.headers["Location"]


def pay(session: requests.Session, checkout: str) -> int:
    page = session.get(checkout, timeout=30)
    if "card_number" not in page.text:
        return page.status_code  # settled or replaced meanwhile: its result page
    data = {"csrf_token": CSRF.search(page.text).group(1), **CARD}
    return session.post(checkout, data=data, timeout=60).status_code


def settled(request_ids: list[str]) -> dict:
    db.session.expire_all()
    succeeded = db.session.scalars(select(Payment).where(Payment.status == "succeeded")).all()
    types = db.session.scalars(select(Event.type).where(Event.type == "payment.succeeded")).all()
    return {
        "paid": {i: db.session.get(PaymentRequest, i).amount_paid for i in request_ids},
        "charged": sum(p.amount for p in succeeded),
        "groups": db.session.scalars(
            select(PaymentGroup.amount).where(PaymentGroup.status == "succeeded")
        ).all(),
        "succeeded_events": len(types),
    }


def test_eight_clicks_on_pay_charge_the_group_once(app, served):
    m = make_merchant()
    st, dep = setup_account(m)
    fields = {"line": str(st.statement_lines[0].id), "request": dep.id}
    opened = tab(served, m.id)
    checkout = start(served, opened, fields)
    session = opened[0]
    card_csrf = CSRF.search(session.get(checkout, timeout=30).text).group(1)

    answers = race(8, lambda _: session.post(checkout, data={"csrf_token": card_csrf, **CARD},
                                             timeout=60).status_code)  # fmt: skip

    assert all(a == 200 for a in answers), answers
    seen = settled([st.id, dep.id])
    assert seen["groups"] == [8000] and seen["charged"] == 8000
    assert seen["paid"] == {st.id: 3000, dep.id: 5000}
    assert seen["succeeded_events"] == 2


def test_two_tabs_paying_the_same_items_settle_once(app, served):
    m = make_merchant()
    st, dep = setup_account(m)
    fields = {"request": [st.id, dep.id]}
    tabs = [tab(served, m.id) for _ in range(4)]

    def both(i: int) -> int | str:
        checkout = start(served, tabs[i], fields)
        return checkout if isinstance(checkout, int) else pay(tabs[i][0], checkout)

    answers = race(4, both)

    assert all(a in (200, 422) for a in answers) and 200 in answers, answers
    seen = settled([st.id, dep.id])
    assert seen["groups"] == [12500] and seen["charged"] == 12500, seen
    assert seen["paid"] == {st.id: 7500, dep.id: 5000}
    assert seen["succeeded_events"] == 2


def test_tabs_with_other_choices_never_settle_more_than_is_due(app, served):
    m = make_merchant()
    st, dep = setup_account(m)
    lines = [str(ln.id) for ln in st.statement_lines]
    choices = [{"request": [st.id, dep.id]}, {"line": lines[0]}, {"request": dep.id},
               {"line": lines, "request": dep.id}]  # fmt: skip
    tabs = [tab(served, m.id) for _ in range(4)]

    def choose(i: int) -> int | str:
        checkout = start(served, tabs[i], choices[i])
        return checkout if isinstance(checkout, int) else pay(tabs[i][0], checkout)

    answers = race(4, choose)

    assert all(a in (200, 422) for a in answers), answers
    seen = settled([st.id, dep.id])
    assert seen["paid"][st.id] <= 7500 and seen["paid"][dep.id] <= 5000, seen
    db.session.expire_all()
    applied = db.session.scalars(select(Payment).where(Payment.applied.is_(True))).all()
    assert sum(p.amount for p in applied) == sum(seen["paid"].values())
    for pr_id in (st.id, dep.id):
        pr = db.session.get(PaymentRequest, pr_id)
        assert pr.amount_paid <= pr.payable_cap
