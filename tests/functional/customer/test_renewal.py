""" "Ask for a new link" on a closed link: the event once a day, the merchant's e-mail over
real SMTP, a rate limit answered with a friendly page, forged tokens refused (no 500)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.db_types import utcnow
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.models import Event
from portal.links import link_token
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.renewal import merchant_contacts, request_renewal
from tests.factories import make_request

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def closed(merchant, state: str = "expired") -> PaymentRequest:
    pr = make_request(merchant)
    if state == "expired":
        pr.expires_at = utcnow() - timedelta(minutes=1)  # expired in fact, not yet marked
    else:
        pr.status = state
    db.session.commit()
    return pr


def ask(client, pr, lang: str = "en"):
    link = f"/p/{link_token(pr.id)}"
    page = client.get(f"{link}?lang={lang}")
    assert page.status_code == 410 and "/renew" in page.text
    return client.post(f"{link}/renew", data={"csrf_token": CSRF.search(page.text)[1]})


def renewal_events(pr_id: str) -> list[Event]:
    return list(
        db.session.scalars(
            select(Event).where(
                Event.request_id == pr_id, Event.type == "payment_request.renewal_requested"
            )
        )
    )


@pytest.mark.parametrize("state", ["expired", "void"])
def test_recorded_once_and_the_merchant_is_told(client, merchant, smtp, state):
    merchant.merchant.support_email = "shop@example.com"
    pr = closed(merchant, state)
    first = ask(client, pr, "fr")
    assert first.status_code == 200
    assert "Votre demande a été envoyée" in first.text.replace("\u202f", " ")
    second = ask(client, pr, "fr")
    nonce = re.compile(r'nonce="[^"]+"')
    assert second.status_code == 200  # and says nothing more
    assert nonce.sub("", second.text) == nonce.sub("", first.text)
    [event] = renewal_events(pr.id)
    assert event.data["payment_request"]["reference"] == "STMT-1"
    run_due_jobs()
    [mail] = smtp.messages
    assert mail["X-Envelope-To"] == "shop@example.com"
    assert "STMT-1" in str(mail["Subject"])
    text = mail.get_body(("plain",)).get_content()
    assert f"/merchant/requests/{pr.id}" in text and "STMT-1" in text
    assert "Jan" not in text  # the customer's name is not passed on


def test_once_a_day_by_the_clock(app, merchant):
    pr = closed(merchant, "void")
    now = utcnow()
    assert request_renewal(pr.id, now)
    assert not request_renewal(pr.id, now + timedelta(hours=23))
    assert request_renewal(pr.id, now + timedelta(days=1, minutes=1))
    db.session.commit()
    assert len(renewal_events(pr.id)) == 2
    from portal.merchant_console.activity import timeline

    # (the request's scheduled reminders, never sent now it is void, are listed by their date)
    kinds = [e.kind for e in timeline(db.session.get(PaymentRequest, pr.id))]
    assert [kind for kind in kinds if kind != "reminder"][-1] == "renewal"


def test_an_open_link_is_not_passed_on(client, merchant):
    pr = make_request(merchant)
    link = f"/p/{link_token(pr.id)}"
    csrf = CSRF.search(client.get(link).text)[1]
    answer = client.post(f"{link}/renew", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert not request_renewal(pr.id) and renewal_events(pr.id) == []


def test_rate_limited_per_link_and_per_address_with_a_friendly_page(database_url):
    from tests.conftest import _empty, make_app
    from tests.factories import make_merchant

    app = make_app(database_url, RATELIMIT_ENABLED=True, renewal_rate_limit="2 per hour")
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
        m = make_merchant()
        one, two, three = (closed(m).id for _ in range(3))
        db.session.remove()
    client = app.test_client()
    net = "1" if database_url.startswith("sqlite") else "2"

    def post(pr_id: str, host: str):
        ip = {"REMOTE_ADDR": f"10.7.{net}.{host}"}
        link = f"/p/{link_token(pr_id)}"
        page = client.get(f"{link}?lang=de", environ_base=ip)
        data = {"csrf_token": CSRF.search(page.text)[1]}
        return client.post(f"{link}/renew", data=data, environ_base=ip)

    with app.app_context():
        assert [post(one, "1").status_code for _ in range(2)] == [200, 200]
        limited = post(one, "2")  # another address, the same link: the link's budget
        assert limited.status_code == 429
        assert 'lang="de"' in limited.text and "Traceback" not in limited.text
        assert post(two, "1").status_code == 429  # the same address, another link
        assert post(three, "3").status_code == 200
        assert len(renewal_events(one)) == 1
    _empty(app)


@pytest.mark.parametrize(
    "token", ["forged", "pr_123.abc", "pr_1dlzmKxHVIOUZcwjCw8crP.forged", "x" * 300]
)
def test_unknown_and_forged_tokens_are_refused(client, merchant, token):
    answer = client.post(f"/p/{token}/renew", data={"csrf_token": "nope"})
    assert answer.status_code == 404


def test_without_the_forms_token_nothing_is_done(client, merchant):
    pr = closed(merchant)
    answer = client.post(f"/p/{link_token(pr.id)}/renew", data={"csrf_token": "forged"})
    assert answer.status_code == 400
    assert renewal_events(pr.id) == []


def test_contacts_fall_back_to_the_owners(app, merchant):
    from portal.merchant_console.models import MerchantUser

    db.session.add(MerchantUser(merchant_id=merchant.id, email="owner@shop.example",
                                role="owner", refund_limit=0, failed_logins=0))  # fmt: skip
    db.session.commit()
    assert merchant_contacts(merchant.id, None) == ["owner@shop.example"]
    assert merchant_contacts(merchant.id, "a@b.example") == ["a@b.example"]


def test_a_merchant_with_no_contact_gets_no_mail_and_no_error(app, merchant, smtp):
    pr = closed(merchant, "void")
    assert request_renewal(pr.id)
    db.session.commit()
    run_due_jobs()
    assert smtp.messages == []
    assert not request_renewal("pr_unknown")
