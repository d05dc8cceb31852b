"""Reminders (issue 17 item 1): scheduled on the merchant's clock, outside quiet hours,
sent once by the periodic duty whatever the number of workers, never after the request
closed, never to a customer who unsubscribed. The clock is driven: ``now`` is passed to
the request's creation and to the duty."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from portal.delivery.models import LinkDelivery
from portal.delivery.sms import sms_segments
from portal.extensions import db
from portal.jobs.periodic import send_due_reminders, send_reminders
from portal.jobs.worker import run_due_jobs
from portal.ledger.models import Event
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import create_payment_request, void_request
from portal.payments.services import fulfil_payment, start_payment
from portal.reminders.models import Reminder, ReminderOptOut
from portal.reminders.optouts import read_token, unsubscribe_token
from portal.reminders.schedule import after_quiet_hours, in_quiet_hours, parse_rule
from tests.factories import make_merchant, statement_body, wallet_body
from tests.servers import HTTPRecorder, json_response

TODAY = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # 11:00 in Brussels (CET, UTC+1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def create(m, body=None, now=TODAY) -> PaymentRequest:
    pr = create_payment_request(m.merchant, body or statement_body(), now=now)
    db.session.commit()
    return pr


def schedule_of(pr) -> dict[str, datetime]:
    rows = db.session.scalars(select(Reminder).where(Reminder.request_id == pr.id))
    return {r.key: r.due_at for r in rows}


def deliveries(pr) -> list[LinkDelivery]:
    return list(db.session.scalars(select(LinkDelivery).where(LinkDelivery.request_id == pr.id)))


@pytest.fixture
def twilio(app):
    """The SMS boundary: the real Twilio SDK talking to a local recorder."""

    def respond(req):
        return json_response(201, {"sid": f"SM{len(server.requests):032d}", "status": "queued"})

    server = HTTPRecorder(respond).start()
    app.config["PORTAL_SMS_URL"] = f"twilio://ACtest:secret@%2B3225550100?api_base={server.url}"
    yield server
    server.stop()


# --- when ---------------------------------------------------------------------------------


def test_a_statement_made_today_is_reminded_at_nine_in_brussels(app):
    m = make_merchant()
    pr = create(m, statement_body(due_date="2026-12-20"))
    # 09:00 in Brussels is 08:00 UTC in winter; the link expires 30 days after the due
    # date (2027-01-19 23:59:59 UTC, already 20 January in Brussels).
    assert schedule_of(pr) == {
        "due-3": utc(2026, 12, 17, 8, 0),
        "due+0": utc(2026, 12, 20, 8, 0),
        "due+7": utc(2026, 12, 27, 8, 0),
        "expiry-3": utc(2027, 1, 17, 8, 0),
    }
    assert pr.reminders is True


def test_the_hour_follows_daylight_saving_time(app):
    m = make_merchant()
    # Summer time starts in Brussels on Sunday 29 March 2026: 09:00 is then 07:00 UTC.
    pr = create(m, statement_body(due_date="2026-03-30"), now=utc(2026, 3, 10, 10, 0))
    times = schedule_of(pr)
    assert times["due-3"] == utc(2026, 3, 27, 8, 0)
    assert times["due+0"] == utc(2026, 3, 30, 7, 0)
    assert times["due+7"] == utc(2026, 4, 6, 7, 0)


def test_a_reminder_in_quiet_hours_goes_when_they_end(app):
    m = make_merchant()
    m.merchant.quiet_start, m.merchant.quiet_end = 7, 10  # 09:00 is quiet for this shop
    db.session.commit()
    pr = create(m, statement_body(due_date="2026-12-20"))
    assert schedule_of(pr)["due+0"] == utc(2026, 12, 20, 9, 0)  # 10:00 in Brussels


def test_without_a_due_date_only_the_expiry_reminder(app):
    m = make_merchant()
    pr = create(m, wallet_body(amount=2500, wallet=None, expires_at="2026-12-20T12:00:00Z"))
    assert schedule_of(pr) == {"expiry-3": utc(2026, 12, 17, 8, 0)}


def test_reminders_already_past_are_not_scheduled(app):
    m = make_merchant()
    pr = create(m, statement_body(due_date="2026-12-03"))
    assert set(schedule_of(pr)) == {"due+0", "due+7", "expiry-3"}  # due-3 was yesterday


def test_rules_and_quiet_hours():
    assert parse_rule("due-3") == ("due", -3)
    assert parse_rule("due+0") == ("due", 0)
    assert parse_rule("expiry-3") == ("expiry", -3)
    for bad in ("due", "due-61", "expiry-0", "expiry+3", "due+ 3", ""):
        with pytest.raises(ValueError):
            parse_rule(bad)
    brussels = datetime(2026, 12, 2, 22, 0, tzinfo=ZoneInfo("Europe/Brussels"))
    assert in_quiet_hours(brussels.replace(hour=22), 21, 8)
    assert in_quiet_hours(brussels.replace(hour=7), 21, 8)
    assert not in_quiet_hours(brussels.replace(hour=8), 21, 8)
    assert not in_quiet_hours(brussels.replace(hour=22), 9, 9)  # equal: none
    assert in_quiet_hours(brussels.replace(hour=12), 12, 14)
    late = brussels.replace(hour=22, minute=30)
    assert after_quiet_hours(late, 21, 8) == late.replace(day=3, hour=8, minute=0)
    early = brussels.replace(hour=6, minute=15)
    assert after_quiet_hours(early, 21, 8) == early.replace(hour=8, minute=0)
    assert after_quiet_hours(brussels.replace(hour=12), 21, 8) == brussels.replace(hour=12)


# --- sending ------------------------------------------------------------------------------


def test_an_email_reminder_arrives_over_smtp_in_the_customers_language(app, smtp, client):
    m = make_merchant()
    body = statement_body(due_date="2026-12-20")
    body["customer"]["locale"] = "fr"
    pr = create(m, body)
    assert send_due_reminders(utc(2026, 12, 17, 7, 59)) == 0  # not yet
    assert send_due_reminders(utc(2026, 12, 17, 8, 0)) == 1
    assert run_due_jobs() >= 1
    [message] = smtp.messages
    assert message["X-Envelope-To"] == "jan@example.com"
    assert "Rappel de Test Shop" in str(message["Subject"])
    text = message.get_body(("plain",)).get_content()
    assert "Ceci est un rappel de Test Shop" in text
    assert "/p/" in text
    html = message.get_body(("html",)).get_content()
    assert "Payer maintenant" in html
    stop = re.search(r"https?://\S+/u/(\S+)\?lang=fr", text)
    assert stop and stop.group(1) in html
    assert message["List-Unsubscribe"] == f"<{stop.group(0)}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [delivery] = deliveries(pr)
    assert (delivery.status, delivery.channel, delivery.locale) == ("sent", "email", "fr")
    reminder = db.session.scalars(select(Reminder).where(Reminder.key == "due-3")).one()
    assert (reminder.status, delivery.reminder_id) == ("sent", reminder.id)
    # The event, for the ledger and in the pull API.
    events = client.get("/api/v1/events", headers=m.headers).json["data"]
    [sent] = [e for e in events if e["type"] == "payment_request.reminder_sent"]
    assert sent["data"]["payment_request"]["id"] == pr.id
    assert sent["data"]["reminder"] == {"id": reminder.id, "key": "due-3", "channel": "email",
                                        "delivery_id": delivery.id}  # fmt: skip
    # In the support and merchant timelines.
    from portal.merchant_console.activity import timeline as merchant_timeline
    from portal.support.timeline import timeline

    story = timeline(db.session.get(PaymentRequest, pr.id))
    assert next((e.title, e.status) for e in story if e.kind == "reminder") == ("due-3", "sent")
    assert any(e.kind == "event" and e.title == "payment_request.reminder_sent" for e in story)
    mine = merchant_timeline(db.session.get(PaymentRequest, pr.id))
    assert "due-3 · sent" in [e.detail for e in mine if e.kind == "reminder"]


def test_an_sms_reminder_goes_through_the_sms_boundary(app, twilio):
    m = make_merchant()
    body = statement_body(due_date="2026-12-20")
    body["customer"] = {"name": "Jan", "phone": "+32 470 12 34 56", "locale": "nl"}
    pr = create(m, body)
    assert send_due_reminders(utc(2026, 12, 20, 8, 0)) == 2  # due-3 is a day late? no:
    run_due_jobs()
    sent = [r.form() for r in twilio.requests]
    assert sent and all(f["To"] == ["+32470123456"] for f in sent)
    text = sent[0]["Body"][0]
    assert text.startswith("Herinnering van Test Shop") and "/s/" in text and "/u/" in text
    # what is due and the short link make one GSM-7 segment; the unsubscribe link follows
    assert sms_segments(text.split(" Geen herinneringen")[0]).count == 1
    assert {d.channel for d in deliveries(pr)} == {"sms"}


def test_no_reminder_after_the_request_is_paid_or_voided(app, smtp):
    m = make_merchant()
    paid = create(m, statement_body(due_date="2026-12-20", reference="PAID"))
    voided = create(m, statement_body(due_date="2026-12-20", reference="VOID"))
    payment = start_payment(db.session.get(PaymentRequest, paid.id), None)
    fulfil_payment(payment.id)
    void_request(m.merchant, voided.id)
    db.session.commit()
    send_due_reminders(utc(2026, 12, 17, 8, 0))
    reasons = {
        r.request_id: (r.status, r.reason)
        for r in db.session.scalars(select(Reminder).where(Reminder.key == "due-3"))
    }
    assert reasons == {paid.id: ("skipped", "paid"), voided.id: ("skipped", "void")}
    run_due_jobs()
    assert not [mail for mail in smtp.messages if "Rappel" in str(mail["Subject"])]
    assert deliveries(paid) == [] and deliveries(voided) == []
    types = set(db.session.scalars(select(Event.type)))
    assert "payment_request.reminder_sent" not in types


def test_a_payment_between_decision_and_sending_cancels_the_message(app, smtp):
    m = make_merchant()
    m.merchant.quiet_start = m.merchant.quiet_end = 0  # the real clock: no quiet hours
    db.session.commit()
    now = datetime.now(UTC)
    pr = create(m, statement_body(due_date=(now + timedelta(days=5)).date().isoformat()))
    db.session.execute(
        Reminder.__table__.update().values(due_at=now - timedelta(minutes=1))
        .where(Reminder.__table__.c.key == "due-3")
    )  # fmt: skip
    db.session.commit()
    assert send_due_reminders(now) == 1
    void_request(m.merchant, pr.id)
    db.session.commit()
    run_due_jobs()
    assert [d.status for d in deliveries(pr)] == ["canceled"]
    assert smtp.messages == []


def test_reminders_false_schedules_none(app, client):
    m = make_merchant()
    resp = client.post("/api/v1/payment-requests", headers=m.headers,
                       json=statement_body(due_date="2026-12-20", reminders=False))  # fmt: skip
    assert resp.status_code == 201, resp.json
    assert resp.json["reminders"] is False
    assert db.session.scalar(select(func.count()).select_from(Reminder)) == 0
    on = client.post("/api/v1/payment-requests", headers=m.headers,
                     json=statement_body(due_date="2026-12-20", reference="ON"))  # fmt: skip
    assert on.json["reminders"] is True
    for bad in ("no", 0, None):
        refused = client.post("/api/v1/payment-requests", headers=m.headers,
                              json=statement_body(reminders=bad))  # fmt: skip
        assert refused.status_code in (400, 422), refused.json
        assert refused.json["error"]["field"] == "reminders"


def test_a_request_switched_off_after_scheduling_is_skipped(app):
    m = make_merchant()
    pr = create(m, statement_body(due_date="2026-12-20"))
    db.session.get(PaymentRequest, pr.id).reminders = False
    db.session.commit()
    send_due_reminders(utc(2026, 12, 17, 8, 0))
    assert db.session.scalars(select(Reminder.reason).where(Reminder.key == "due-3")).one() == (
        "disabled"
    )


def test_quiet_hours_at_send_time_and_late_reminders(app, smtp):
    m = make_merchant()
    pr = create(m, statement_body(due_date="2026-12-20"))
    # The workers were away: at 22:30 in Brussels the due-3 reminder waits for 08:00.
    assert send_due_reminders(utc(2026, 12, 17, 21, 30)) == 1
    reminder = db.session.scalars(select(Reminder).where(Reminder.key == "due-3")).one()
    assert (reminder.status, reminder.due_at) == ("scheduled", utc(2026, 12, 18, 7, 0))
    assert send_due_reminders(utc(2026, 12, 18, 6, 59)) == 0
    assert send_due_reminders(utc(2026, 12, 18, 7, 0)) == 1
    db.session.refresh(reminder)
    assert reminder.status == "sent"
    # Away for more than a day: the reminder is not sent late.
    assert send_due_reminders(utc(2026, 12, 21, 10, 0)) == 1
    late = db.session.scalars(select(Reminder).where(Reminder.key == "due+0")).one()
    assert (late.status, late.reason) == ("skipped", "late")
    assert len(deliveries(pr)) == 1


def test_no_contact_or_no_channel(app):
    m = make_merchant()
    body = statement_body(due_date="2026-12-20")
    body["customer"] = {"name": "Nobody"}
    create(m, body)
    send_due_reminders(utc(2026, 12, 17, 8, 0))
    assert db.session.scalars(select(Reminder.reason).where(Reminder.key == "due-3")).one() == (
        "no_contact"
    )


# --- unsubscribe -------------------------------------------------------------------------


def test_unsubscribe_is_honoured_and_asked_links_still_go(app, client, smtp):
    m = make_merchant()
    body = statement_body(due_date="2026-12-20")
    body["customer"]["locale"] = "de"
    pr = create(m, body)
    send_due_reminders(utc(2026, 12, 17, 8, 0))
    run_due_jobs()
    text = smtp.messages[0].get_body(("plain",)).get_content()
    path = re.search(r"https?://[^/\s]+(/u/\S+)", text).group(1)
    page = client.get(path)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Zahlungserinnerungen beenden?" in page.text and 'lang="de"' in page.text
    assert db.session.scalar(select(func.count()).select_from(ReminderOptOut)) == 0  # GET: nothing
    done = client.post(path, data={"List-Unsubscribe": "One-Click"})  # as a mail client does
    assert done.status_code == 200 and "keine Erinnerungen mehr" in done.text
    assert client.post(path).status_code == 200  # twice: one row
    assert db.session.scalar(select(func.count()).select_from(ReminderOptOut)) == 1
    # No more reminders to that address, from any request of that merchant...
    other = create(m, statement_body(due_date="2026-12-20", reference="OTHER"))
    send_due_reminders(utc(2026, 12, 20, 8, 0))
    reasons = set(db.session.scalars(select(Reminder.reason).where(Reminder.key == "due+0")))
    assert reasons == {"unsubscribed"}
    # ... but a link the merchant sends on purpose goes.
    resp = client.post(f"/api/v1/payment-requests/{other.id}/send", headers=m.headers,
                       json={"channel": "email"})  # fmt: skip
    assert resp.status_code in (200, 201, 202), resp.json
    smtp.messages.clear()
    run_due_jobs()
    [asked] = smtp.messages
    assert "/u/" not in asked.get_body(("plain",)).get_content()
    assert asked["List-Unsubscribe"] is None
    # Another merchant's reminders to the same address still go.
    shop2 = make_merchant(name="Other Shop")
    create(shop2, statement_body(due_date="2026-12-24"))
    send_due_reminders(utc(2026, 12, 21, 8, 0))
    assert (
        db.session.scalars(
            select(Reminder.status).where(Reminder.merchant_id == shop2.id, Reminder.key == "due-3")
        ).one()
        == "sent"
    )
    assert pr.id != other.id


def test_tampered_or_foreign_unsubscribe_links_are_a_plain_404(app, client):
    m = make_merchant()
    token = unsubscribe_token(m.id, "email", "jan@example.com")
    assert read_token(token) is not None
    for bad in (token[:-2] + "xx", "nope", "a.b", token.replace("email", "fax", 1)):
        assert client.get(f"/u/{bad}").status_code == 404
        assert client.post(f"/u/{bad}").status_code == 404
    gone = unsubscribe_token("mer_doesnotexist", "email", "jan@example.com")
    assert client.get(f"/u/{gone}").status_code == 404


# --- several workers -----------------------------------------------------------------------


def test_two_workers_send_each_reminder_once(app, database_url):
    m = make_merchant()
    ids = [create(m, statement_body(due_date="2026-12-20", reference=f"R{i}")).id
           for i in range(12)]  # fmt: skip
    now = utc(2026, 12, 17, 8, 0)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        with app.app_context():
            try:
                start.wait()
                send_due_reminders(now)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db.session.expire_all()
    sent = db.session.scalars(select(Reminder).where(Reminder.key == "due-3")).all()
    assert {r.status for r in sent} == {"sent"} and len(sent) == len(ids)
    per_reminder = db.session.execute(
        select(LinkDelivery.reminder_id, func.count()).group_by(LinkDelivery.reminder_id)
    ).all()
    assert sorted(n for _, n in per_reminder) == [1] * len(ids)
    events = db.session.scalar(
        select(func.count()).select_from(Event).where(Event.type == "payment_request.reminder_sent")
    )
    assert events == len(ids)


def test_the_duty_runs_from_the_worker(app):
    m = make_merchant()
    long_ago = datetime.now(UTC) - timedelta(days=40)
    due = (long_ago + timedelta(days=5)).date().isoformat()
    create(m, statement_body(due_date=due), now=long_ago)
    send_reminders()  # the real clock: every reminder of this old request is long past
    db.session.expire_all()
    assert set(db.session.scalars(select(Reminder.status))) <= {"skipped"}


def test_the_claim_is_held_by_the_conditional_update(app):
    from portal.reminders.services import _claim

    m = make_merchant()
    create(m, statement_body(due_date="2026-12-20"))
    reminder = db.session.scalars(select(Reminder).where(Reminder.key == "due-3")).one()
    now = utc(2026, 12, 17, 8, 0)
    assert _claim(reminder.id, "sent", None, now) is True
    assert _claim(reminder.id, "skipped", "late", now) is False  # already out of scheduled
    db.session.commit()
    db.session.refresh(reminder)
    assert (reminder.status, reminder.reason) == ("sent", None)


def test_a_signed_token_of_another_shape_is_refused(app):
    from portal.links import sign
    from portal.reminders.optouts import UNSUBSCRIBE_SALT

    for value in ("fax-" + "0" * 64 + "-mer_x", "email-abc-mer_x", "email-" + "0" * 64 + "-pr_x"):
        assert read_token(sign(value, UNSUBSCRIBE_SALT)) is None


def test_one_failing_reminder_does_not_stop_the_others(app, monkeypatch):
    import portal.jobs.periodic as periodic

    m = make_merchant()
    for i in range(3):
        create(m, statement_body(due_date="2026-12-20", reference=f"R{i}"))
    real, calls = periodic.send_reminder, []

    def flaky(reminder_id, request_id, now=None):
        calls.append(reminder_id)
        if len(calls) == 1:
            raise RuntimeError("a broken row")
        return real(reminder_id, request_id, now)

    monkeypatch.setattr(periodic, "send_reminder", flaky)
    monkeypatch.setattr(periodic, "REMINDER_BATCH", 1)  # one statement per reminder
    assert send_due_reminders(utc(2026, 12, 17, 8, 0)) >= 2
    statuses = db.session.scalars(select(Reminder.status).where(Reminder.key == "due-3")).all()
    assert sorted(statuses).count("sent") >= 2


def test_unsubscribe_tokens_are_masked_in_logs(app):
    from portal.logs import mask, mask_path

    token = unsubscribe_token("mer_abc", "email", "jan@example.com")
    assert mask_path(f"/u/{token}") == "/u/…"
    line = mask(f'"GET /u/{token}?lang=fr HTTP/1.1" 200')
    assert token not in line and "/u/…?lang=fr" in line


def test_a_due_date_at_the_end_of_the_calendar(app):
    m = make_merchant()
    pr = create(m, statement_body(due_date="9999-12-31"))
    assert set(schedule_of(pr)) <= {"expiry-3"}  # the due date is past the link's expiry
