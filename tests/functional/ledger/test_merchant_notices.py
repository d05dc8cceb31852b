"""The merchant hears about trouble (issue 17 item 5): an endpoint disabled by a 410, dead
letters batched per endpoint and hour, and the optional daily digest, all over real SMTP."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.jobs import periodic
from portal.jobs.models import Job
from portal.jobs.periodic import DUTIES
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackDelivery, CallbackEndpoint
from portal.merchants.models import Merchant
from portal.notices import services as notices
from portal.notices.models import MerchantNotice
from portal.payments.models import Payment, Refund
from portal.payments.services import fulfil_payment, start_payment
from tests.factories import make_merchant, make_request, statement_body
from tests.functional.merchant_console.helpers import console_user, csrf, sign_in
from tests.functional.support.test_console import https_client
from tests.servers import HTTPRecorder


@pytest.fixture
def receiver():
    answers: list[int] = []
    server = HTTPRecorder(lambda req: (answers.pop(0) if answers else 200, {}, b"{}")).start()
    server.answers = answers
    yield server
    server.stop()


def settle(m, reference="STMT-1"):
    pr = make_request(m, statement_body(reference=reference))
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()
    return payment


def to_merchant(smtp) -> list:
    """The merchant's e-mails (the customers' receipts go to …@example.com)."""
    return [x for x in smtp.messages if not x["X-Envelope-To"].endswith("@example.com")]


def body_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_a_410_sends_exactly_one_email_with_a_replay_link_that_works(app, smtp, receiver):
    receiver.answers.append(410)
    m = make_merchant(name="Shop")
    owner = console_user(m.merchant, "owner@shop.test")
    console_user(m.merchant, "staff@shop.test", "staff")  # staff are not told
    endpoint = add_endpoint(m.id, f"{receiver.url}/ledger", ["payment.succeeded"])
    db.session.commit()
    settle(m)
    run_due_jobs()
    settle(m, "STMT-2")  # a later event: the endpoint is disabled, nobody is told twice
    run_due_jobs()
    db.session.refresh(endpoint)
    assert endpoint.enabled is False and len(receiver.requests) == 1
    assert len(to_merchant(smtp)) == 1
    mail = to_merchant(smtp)[0]
    assert mail["X-Envelope-To"] == "owner@shop.test"
    assert "disabled" in mail["Subject"] and endpoint.url in mail["Subject"]
    text = body_of(mail)
    assert "410" in text
    link = re.search(r"https?://\S+/merchant/settings#deliveries", text).group(0)
    # The link opens the delivery log for a signed-in owner, where the delivery is replayed.
    browser = https_client(app)
    assert browser.get(urlsplit(link).path).status_code in (302, 303)  # not signed in
    sign_in(browser, owner)
    page = browser.get(urlsplit(link).path)
    assert page.status_code == 200 and 'id="deliveries"' in page.text
    delivery = db.session.scalars(select(CallbackDelivery)).first()
    assert delivery.status == "dead" and delivery.event_id in page.text
    token = csrf(browser, "/merchant/settings")
    enable = browser.post(f"/merchant/endpoints/{endpoint.id}", data={"csrf_token": token,
                                                                      "do": "enable"})  # fmt: skip
    assert enable.status_code == 303
    replay = browser.post(
        f"/merchant/events/{delivery.event_id}/replay", data={"csrf_token": token}
    )
    assert replay.status_code == 303
    run_due_jobs()
    assert len(receiver.requests) == 2
    db.session.expire_all()
    assert db.session.get(CallbackDelivery, delivery.id).status == "succeeded"
    assert len(to_merchant(smtp)) == 1


def test_the_email_speaks_the_merchants_language_and_goes_to_the_support_address(
    app, smtp, receiver
):
    receiver.answers.append(410)
    m = make_merchant(name="Boutique", locale="fr", support_email="aide@boutique.test")
    add_endpoint(m.id, receiver.url, ["payment.succeeded"])
    db.session.commit()
    settle(m)
    run_due_jobs()
    (mail,) = to_merchant(smtp)
    assert mail["X-Envelope-To"] == "aide@boutique.test"  # no owner yet: the shop's address
    assert "désactivé" in mail["Subject"]


def test_dead_letters_are_batched_one_email_per_endpoint_and_hour(app, smtp, receiver):
    app.config["PORTAL_CALLBACK_SCHEDULE"] = []  # the first failure is the last
    receiver.answers.extend([500] * 10)
    m = make_merchant(name="Shop")
    console_user(m.merchant, "owner@shop.test")
    endpoint = add_endpoint(m.id, receiver.url, ["payment.succeeded"])
    db.session.commit()
    settle(m)
    run_due_jobs()
    assert [body_of(x).count("1 delivery") for x in to_merchant(smtp)] == [1]
    assert to_merchant(smtp)[0]["Subject"] == "1 callback delivery failed"
    for n in range(3):  # three more within the hour: they wait together
        settle(m, f"STMT-{n + 2}")
    run_due_jobs()
    assert len(to_merchant(smtp)) == 1
    first, waiting = db.session.scalars(
        select(MerchantNotice).order_by(MerchantNotice.send_at)
    ).all()
    assert waiting.sent_at is None and waiting.deliveries == 3
    assert waiting.send_at == first.send_at + timedelta(hours=1)
    job = db.session.scalars(select(Job).where(Job.kind == "send_merchant_notice",
                                               Job.status == "queued")).one()  # fmt: skip
    assert job.run_at == waiting.send_at
    # The hour passes (the job is made due; the clock of the batch is the notice's send_at).
    job.run_at = first.send_at
    db.session.commit()
    run_due_jobs()
    assert len(to_merchant(smtp)) == 2
    assert to_merchant(smtp)[1]["Subject"] == "3 callback deliveries failed"
    assert str(endpoint.url) in body_of(to_merchant(smtp)[1])
    # A fourth after that: a new batch, an hour after the second e-mail's time.
    settle(m, "STMT-9")
    run_due_jobs()
    latest = db.session.scalars(
        select(MerchantNotice).order_by(MerchantNotice.send_at.desc())
    ).first()
    assert latest.sent_at is None and latest.send_at == waiting.send_at + timedelta(hours=1)
    assert len(to_merchant(smtp)) == 2


def test_a_deleted_endpoint_tells_nobody(app, smtp):
    m = make_merchant()
    endpoint = add_endpoint(m.id, "http://127.0.0.1:9/ledger")
    endpoint.enabled = False
    db.session.commit()
    assert notices.dead_lettered(endpoint) is None


def test_the_database_holds_one_waiting_batch_per_endpoint(app):
    m = make_merchant()
    endpoint = add_endpoint(m.id, "http://127.0.0.1:9/ledger")
    db.session.commit()
    for _ in range(2):
        db.session.add(MerchantNotice(merchant_id=m.id, kind="dead_letters",
                                      endpoint_id=endpoint.id, deliveries=1))  # fmt: skip
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        db.session.flush()
    db.session.rollback()
    db.session.add(MerchantNotice(merchant_id=m.id, kind="digest", deliveries=0))  # no day
    with pytest.raises(Exception, match=r"(?i)check"):
        db.session.flush()
    db.session.rollback()


# --- the daily digest -----------------------------------------------------------------

# 06:30 in Brussels on Wednesday 2 December 2026: Tuesday's digest is due.
MORNING = datetime(2026, 12, 2, 5, 30, tzinfo=UTC)


def paid_at(m, when: datetime, reference: str) -> Payment:
    payment = settle(m, reference)
    payment = db.session.get_one(Payment, payment.id)
    payment.succeeded_at = when
    db.session.commit()
    return payment


def test_the_digest_reads_the_day_on_the_merchants_clock_and_leaves_once_with_two_workers(
    app, smtp
):
    m = make_merchant(name="Shop")
    console_user(m.merchant, "owner@shop.test")
    shop = db.session.get_one(Merchant, m.id)
    shop.daily_digest = True
    quiet = make_merchant(name="Quiet")  # digest off: nothing
    db.session.commit()
    inside = [
        paid_at(m, datetime(2026, 11, 30, 23, 0, tzinfo=UTC), "A"),  # 00:00 Brussels, 1 Dec
        paid_at(m, datetime(2026, 12, 1, 22, 59, tzinfo=UTC), "B"),  # 23:59 Brussels
    ]
    paid_at(m, datetime(2026, 11, 30, 22, 59, tzinfo=UTC), "C")  # 30 Nov, 23:59 Brussels
    paid_at(m, datetime(2026, 12, 1, 23, 0, tzinfo=UTC), "D")  # 2 Dec already
    paid_at(quiet, datetime(2026, 12, 1, 12, 0, tzinfo=UTC), "Q")
    db.session.add(Refund(payment_id=inside[0].id, merchant_id=m.id, amount=1000, currency="EUR",
                          created_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC)))  # fmt: skip
    db.session.commit()
    db.session.query(Job).delete()
    db.session.commit()
    # 05:30 in Brussels: too early for yesterday's digest.
    assert periodic.daily_digests(MORNING - timedelta(hours=1)) == 0
    # Two workers run the duty at the same moment: one digest.
    start = threading.Barrier(2)
    queued: list[int] = []

    def worker() -> None:
        with app.app_context():
            start.wait()
            queued.append(periodic.daily_digests(MORNING))
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(queued) == [0, 1]
    assert periodic.daily_digests(MORNING + timedelta(hours=10)) == 0  # later the same day
    run_due_jobs()
    assert len(to_merchant(smtp)) == 1
    mail = to_merchant(smtp)[0]
    assert mail["X-Envelope-To"] == "owner@shop.test"
    assert "1 December 2026" in mail["Subject"]
    text = body_of(mail)
    assert "2 payments" in text and "1 refund: €10.00" in text
    for payment in inside:
        assert payment.receipt_number in text
    notice = db.session.scalars(select(MerchantNotice)).one()
    assert str(notice.day) == "2026-12-01" and notice.merchant_id == m.id
    # The next morning: Wednesday's digest (payment D).
    assert periodic.daily_digests(MORNING + timedelta(days=1)) == 1
    run_due_jobs()
    assert len(to_merchant(smtp)) == 2 and "1 payment:" in body_of(to_merchant(smtp)[1])


def test_a_quiet_day_sends_nothing_and_the_duty_is_a_periodic_one(app, smtp):
    m = make_merchant(name="Shop")
    console_user(m.merchant, "owner@shop.test")
    db.session.get_one(Merchant, m.id).daily_digest = True
    db.session.commit()
    assert next(d for d in DUTIES if d.name == "daily-digests").run is periodic.daily_digests
    assert periodic.daily_digests(MORNING) == 1
    run_due_jobs()
    assert to_merchant(smtp) == []
    assert db.session.scalars(select(MerchantNotice)).one().sent_at is not None


def test_the_digest_setting_in_the_api_and_the_console(app, client):
    m = make_merchant(name="Shop")
    assert client.get("/api/v1/merchant", headers=m.headers).json["daily_digest"] is False
    on = client.patch("/api/v1/merchant", headers=m.headers, json={"daily_digest": True})
    assert on.status_code == 200 and on.json["daily_digest"] is True
    for bad in ("yes", 1, None):
        resp = client.patch("/api/v1/merchant", headers=m.headers, json={"daily_digest": bad})
        assert resp.status_code == 422, bad
        assert resp.json["error"]["field"] == "daily_digest"
    db.session.expire_all()
    assert db.session.get_one(Merchant, m.id).daily_digest is True
    owner = console_user(m.merchant, "owner@shop.test")
    browser = https_client(app)
    sign_in(browser, owner)
    page = browser.get("/merchant/settings").text
    assert 'name="daily_digest" value="1" checked' in page
    token = csrf(browser, "/merchant/settings")
    form = {
        "csrf_token": token,
        "display_name": "Shop",
        "default_locale": "en",
        "country": "BE",
        "time_zone": "Europe/Brussels",
        "accent_color": "#1f5f8b",
    }
    assert browser.post("/merchant/settings", data=form).status_code == 303
    db.session.expire_all()
    assert db.session.get_one(Merchant, m.id).daily_digest is False
    assert browser.post("/merchant/settings", data={**form, "daily_digest": "1"}).status_code == 303
    db.session.expire_all()
    assert db.session.get_one(Merchant, m.id).daily_digest is True
    assert db.session.get_one(CallbackEndpoint, add_endpoint(m.id, "http://127.0.0.1:9/").id)


def test_a_notice_job_run_twice_sends_once(app, smtp, receiver):
    receiver.answers.append(410)
    m = make_merchant(name="Shop")
    console_user(m.merchant, "owner@shop.test")
    add_endpoint(m.id, receiver.url, ["payment.succeeded"])
    db.session.commit()
    settle(m)
    run_due_jobs()
    notice = db.session.scalars(select(MerchantNotice)).one()
    notices.send_merchant_notice({"notice_id": notice.id})  # a job re-run after its commit
    notices.send_merchant_notice({"notice_id": "mn_unknown"})
    assert len(to_merchant(smtp)) == 1


def test_two_workers_dead_lettering_at_once_fill_one_batch(app, smtp):
    """The endpoint's row lock (BEGIN IMMEDIATE on SQLite) puts both in the same notice."""
    m = make_merchant()
    endpoint_id = add_endpoint(m.id, "http://127.0.0.1:9/ledger").id
    db.session.commit()
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        with app.app_context():
            try:
                start.wait()
                notices.dead_lettered(db.session.get_one(CallbackEndpoint, endpoint_id))
                db.session.commit()
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (notice,) = db.session.scalars(select(MerchantNotice)).all()
    assert notice.deliveries == 2 and notice.sent_at is None
    assert db.session.query(Job).filter_by(kind="send_merchant_notice").count() == 1
