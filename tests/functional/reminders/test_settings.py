"""The merchant's reminder settings: ``PATCH /api/v1/merchant`` and the console's form,
one shape and one set of rules."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from portal.extensions import db
from portal.merchants.models import Merchant
from portal.payment_requests.services import create_payment_request
from portal.reminders.models import Reminder
from tests.factories import make_merchant, statement_body
from tests.functional.merchant_console.helpers import console_user, csrf, sign_in
from tests.functional.merchant_console.test_settings import FORM
from tests.functional.support.test_console import https_client

DEFAULT = {
    "schedule": ["due-3", "due+0", "due+7", "expiry-3"],
    "channels": ["email", "sms"],
    "quiet_hours": {"start": 21, "end": 8},
}


def test_the_api_reads_and_replaces_the_reminder_settings(app, client):
    m = make_merchant()
    assert client.get("/api/v1/merchant", headers=m.headers).json["reminders"] == DEFAULT
    mine = {"schedule": ["due-1", "due+14", "due-1"], "channels": ["email"],
            "quiet_hours": {"start": 20, "end": 9}}  # fmt: skip
    resp = client.patch("/api/v1/merchant", headers=m.headers, json={"reminders": mine})
    assert resp.status_code == 200, resp.json
    assert resp.json["reminders"] == {**mine, "schedule": ["due-1", "due+14"]}
    db.session.expire_all()
    pr = create_payment_request(
        db.session.get(Merchant, m.id), statement_body(due_date="2026-12-20"),
        now=datetime(2026, 12, 2, 10, tzinfo=UTC),
    )  # fmt: skip
    db.session.commit()
    keys = set(db.session.scalars(select(Reminder.key).where(Reminder.request_id == pr.id)))
    assert keys == {"due-1", "due+14"}
    # None at all: an empty schedule.
    off = {**DEFAULT, "schedule": []}
    assert client.patch("/api/v1/merchant", headers=m.headers,
                        json={"reminders": off}).json["reminders"]["schedule"] == []  # fmt: skip


def test_the_api_refuses_bad_reminder_settings(app, client):
    m = make_merchant()
    cases = [
        ({**DEFAULT, "schedule": ["due-61"]}, "invalid_reminder_rule", "reminders.schedule[0]"),
        ({**DEFAULT, "schedule": ["expiry-0"]}, "invalid_reminder_rule", "reminders.schedule[0]"),
        ({**DEFAULT, "schedule": ["tomorrow"]}, "invalid_reminder_rule", "reminders.schedule[0]"),
        ({**DEFAULT, "schedule": [3]}, None, "reminders.schedule[0]"),
        ({**DEFAULT, "channels": ["fax"]}, "invalid_channel", "reminders.channels[0]"),
        ({**DEFAULT, "quiet_hours": {"start": 24, "end": 8}}, "invalid_hour",
         "reminders.quiet_hours.start"),
        ({**DEFAULT, "quiet_hours": {"start": "21", "end": 8}}, None,
         "reminders.quiet_hours.start"),
        ({"schedule": ["due-3"]}, None, "reminders.channels"),
        ({**DEFAULT, "extra": 1}, None, "reminders.extra"),
        (None, "invalid_value", "reminders"),
    ]  # fmt: skip
    for reminders, code, field in cases:
        resp = client.patch("/api/v1/merchant", headers=m.headers, json={"reminders": reminders})
        assert resp.status_code in (400, 422), (reminders, resp.json)
        error = resp.json["error"]
        assert error["field"] == field, (reminders, error)
        if code:
            assert error["code"] == code, (reminders, error)
    assert client.get("/api/v1/merchant", headers=m.headers).json["reminders"] == DEFAULT


def test_the_console_changes_the_reminder_settings(app, client):
    m = make_merchant(name="Shop")
    owner = console_user(m.merchant, "owner@shop.test")
    browser = https_client(app)
    sign_in(browser, owner)
    page = browser.get("/merchant/settings").text
    assert 'name="reminder_schedule"' in page and "due-3, due+0, due+7, expiry-3" in page
    token = csrf(browser, "/merchant/settings")
    form = {**FORM, "csrf_token": token, "reminder_schedule": "due-2, due+5",
            "reminder_channels": ["sms"], "quiet_start": "22", "quiet_end": "7"}  # fmt: skip
    assert browser.post("/merchant/settings", data=form).status_code == 303
    db.session.expire_all()
    shop = db.session.get(Merchant, m.id)
    assert shop.reminders == {"schedule": ["due-2", "due+5"], "channels": ["sms"],
                              "quiet_hours": {"start": 22, "end": 7}}  # fmt: skip
    for bad, message in (
        ({"reminder_schedule": "soon"}, "due-3, due+0, due+7 or expiry-3"),
        ({"quiet_start": "late"}, "whole hours"),
        ({"quiet_end": "25"}, "whole hours"),
    ):
        token = csrf(browser, "/merchant/settings")
        resp = browser.post("/merchant/settings", data={**form, "csrf_token": token, **bad})
        assert resp.status_code in (200, 400, 422) and message in resp.text, bad
    db.session.expire_all()
    assert db.session.get(Merchant, m.id).quiet_start == 22


def test_both_consoles_show_the_reminders_of_a_request(app):
    from portal.jobs.periodic import send_due_reminders

    m = make_merchant(name="Shop")
    pr = create_payment_request(
        m.merchant, statement_body(due_date="2026-12-20"),
        now=datetime(2026, 12, 2, 10, tzinfo=UTC),
    )  # fmt: skip
    db.session.commit()
    send_due_reminders(datetime(2026, 12, 17, 8, tzinfo=UTC))
    owner = console_user(m.merchant, "owner@shop.test")
    browser = https_client(app)
    sign_in(browser, owner)
    page = browser.get(f"/merchant/requests/{pr.id}")
    assert page.status_code == 200
    assert (
        "Reminder" in page.text and "due-3 · sent" in page.text and "due+7 · scheduled" in page.text
    )


def test_the_support_timeline_shows_the_reminders(app):
    from portal.jobs.periodic import send_due_reminders
    from tests.functional.support.test_console import login, staff

    m = make_merchant(name="Shop")
    pr = create_payment_request(
        m.merchant, statement_body(due_date="2026-12-20"),
        now=datetime(2026, 12, 2, 10, tzinfo=UTC),
    )  # fmt: skip
    db.session.commit()
    send_due_reminders(datetime(2026, 12, 17, 8, tzinfo=UTC))
    agent = https_client(app)
    login(agent, staff())
    story = agent.get(f"/support/requests/{pr.id}")
    assert story.status_code == 200, story.headers.get("Location")
    assert "Reminder" in story.text and "payment_request.reminder_sent" in story.text
