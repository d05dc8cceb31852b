"""The support console: accounts, sessions, scope, search, timeline, actions, audit."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from flask.testing import FlaskClient

from portal.db_types import utcnow
from portal.delivery.models import LinkDelivery
from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackAttempt, Event
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment, Refund
from portal.payments.services import fulfil_payment, start_payment
from portal.support.auth import create_staff
from portal.support.models import AuditLog, StaffSession
from tests.factories import make_merchant, make_request, statement_body
from tests.servers import HTTPRecorder

PASSWORD = "correct horse battery"
COOKIE = "__Host-portal_support"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class HttpsClient(FlaskClient):
    """Every request over https, as the console is served in production, with the
    Referer a browser sends under our Referrer-Policy (strict-origin: the origin only)."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("base_url", "https://portal.test")
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Referer", "https://portal.test/")
        kwargs["headers"] = {k: v for k, v in headers.items() if v is not None}
        return super().open(*args, **kwargs)


def https_client(app, **environ):
    app.test_client_class = HttpsClient
    client = app.test_client()
    client.environ_base.update(environ)
    return client


@pytest.fixture
def https(app):
    return https_client(app)


def staff(role="support", merchants=None, email=None):
    user, _ = create_staff(email or f"{role}@portal.test", role, merchants or [], PASSWORD)
    db.session.commit()
    return user


def token(client, path="/support/login"):
    return CSRF.search(client.get(path).text).group(1)


def login(client, user, password=PASSWORD, code=None):
    code = (
        code
        if code is not None
        else (pyotp.TOTP(user.totp_secret).now() if user.totp_secret else "")
    )
    return client.post(
        "/support/login",
        data={"csrf_token": token(client), "email": user.email, "password": password, "code": code},
    )


def act(client, pr_id, action, target="", reason="customer called"):
    page = client.get(f"/support/requests/{pr_id}/confirm/{action}?target={target}")
    assert page.status_code == 200, page.status_code
    return client.post(
        f"/support/requests/{pr_id}/do/{action}",
        data={"csrf_token": CSRF.search(page.text).group(1), "reason": reason, "target": target},
    )


def paid_request(m, **body):
    pr = make_request(m, statement_body(**body))
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()
    return db.session.get(PaymentRequest, pr.id), db.session.get(Payment, payment.id)


def test_login_sets_a_host_cookie_and_logout_ends_the_session(https):
    user = staff()
    resp = login(https, user)
    assert resp.status_code == 303
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert https.get("/support/").status_code == 200
    session_id = re.search(f"{COOKIE}=([^;]+)", cookie).group(1)
    https.post("/support/logout", data={"csrf_token": token(https, "/support/")})
    assert db.session.get(StaffSession, session_id) is None
    # replaying the old cookie does not get back in
    https.set_cookie(COOKIE, session_id, domain="portal.test", secure=True)
    assert https.get("/support/").status_code == 302


def test_a_new_session_at_every_login(https):
    user = staff()
    first = re.search(f"{COOKIE}=([^;]+)", login(https, user).headers["Set-Cookie"]).group(1)
    second = re.search(f"{COOKIE}=([^;]+)", login(https, user).headers["Set-Cookie"]).group(1)
    assert first != second
    assert db.session.get(StaffSession, first) is None


def test_failures_look_the_same_and_lock_the_account(https):
    user = staff()
    unknown = https.post(
        "/support/login",
        data={"csrf_token": token(https), "email": "nobody@x.test", "password": PASSWORD},
    )
    wrong = login(https, user, password="wrong password!")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text.replace("nobody@x.test", "") == wrong.text.replace(user.email, "")
    for _ in range(4):
        login(https, user, password="wrong password!")
    db.session.refresh(user)
    assert user.locked_until is not None
    assert login(https, user).status_code == 401  # locked even with the right password
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert login(https, user).status_code == 303


def test_login_is_rate_limited(database_url):
    from tests.conftest import _empty, make_app

    app = make_app(database_url, RATELIMIT_ENABLED=True)
    with app.app_context():
        db.create_all()
        db.session.remove()
    client = https_client(app, REMOTE_ADDR=f"10.7.7.{database_url.startswith('sqlite') + 1}")
    csrf = token(client)
    statuses = [
        client.post(
            "/support/login", data={"csrf_token": csrf, "email": "a@b.c", "password": "x"}
        ).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    _empty(app)


def test_login_is_rate_limited_per_account_across_addresses(database_url):
    from tests.conftest import _empty, make_app

    app = make_app(database_url, RATELIMIT_ENABLED=True, login_account_rate_limit="3 per hour")
    with app.app_context():
        db.create_all()
        db.session.remove()
    statuses = []
    for n in range(4):
        client = https_client(app, REMOTE_ADDR=f"10.8.{database_url.startswith('sqlite')}.{n}")
        data = {"csrf_token": token(client), "email": " Target@Portal.test", "password": "x"}
        statuses.append(client.post("/support/login", data=data).status_code)
    assert statuses == [401, 401, 401, 429]
    # another account from the same address is not blocked by it
    client = https_client(app, REMOTE_ADDR=f"10.8.{database_url.startswith('sqlite')}.0")
    data = {"csrf_token": token(client), "email": "other@portal.test", "password": "x"}
    assert client.post("/support/login", data=data).status_code == 401
    _empty(app)


def test_https_forms_need_a_same_origin_referer(https):
    """Flask-WTF's strict Referer check is on; our Referrer-Policy lets it pass."""
    user = staff()
    csrf = token(https)
    form = {"csrf_token": csrf, "email": user.email, "password": PASSWORD}
    missing = https.post("/support/login", data=form, headers={"Referer": None})
    assert missing.status_code == 400
    foreign = https.post("/support/login", data=form, headers={"Referer": "https://evil.test/"})
    assert foreign.status_code == 400
    assert https.post("/support/login", data=form).status_code == 303


def test_admins_need_a_totp_code(https):
    admin = staff("admin")
    assert admin.totp_secret
    assert login(https, admin, code="").status_code == 401
    assert login(https, admin, code="000000").status_code == 401
    assert login(https, admin).status_code == 303


def test_support_staff_may_turn_totp_on(app, https):
    runner = app.test_cli_runner()
    out = runner.invoke(
        args=["staff", "create", "--email", "agent@portal.test", "--password", PASSWORD, "--totp"]
    )
    assert out.exit_code == 0, out.output
    assert "otpauth://totp/" in out.output
    from portal.support.models import StaffUser

    user = db.session.query(StaffUser).filter_by(email="agent@portal.test").one()
    assert login(https, user, code="").status_code == 401
    assert login(https, user).status_code == 303


@pytest.mark.parametrize(("field", "age"), [("last_seen_at", 31), ("created_at", 12 * 60 + 1)])
def test_idle_and_absolute_timeouts(https, field, age):
    login(https, staff())
    session = db.session.query(StaffSession).one()
    setattr(session, field, utcnow() - timedelta(minutes=age))
    if field == "created_at":
        session.last_seen_at = utcnow()
    db.session.commit()
    assert https.get("/support/").status_code == 302
    assert db.session.query(StaffSession).count() == 0


def test_search_by_each_key(https):
    m = make_merchant()
    body = statement_body(reference="INV-77")
    body["customer"]["phone"] = "+32 470 11 22 33"
    pr, payment = paid_request(m, **{k: v for k, v in body.items() if k != "kind"})
    payment.provider_payment_id = "pi_searchable"
    db.session.commit()
    login(https, staff())
    for q in [
        pr.id,
        payment.id,
        "pi_searchable",
        "INV-77",
        "Jan Pee",
        "jan@example.com",
        "JAN@example.com",
        "+32470112233",
        "0470 11 22 33",
        "C-1",
    ]:
        page = https.get("/support/search", query_string={"q": q})
        assert f"/support/requests/{pr.id}" in page.text, q
    none = https.get("/support/search", query_string={"q": "nobody@example.com"})
    assert f"/support/requests/{pr.id}" not in none.text
    by_status = https.get("/support/search", query_string={"q": "INV-77", "status": "open"})
    assert f"/support/requests/{pr.id}" not in by_status.text
    today = utcnow().date().isoformat()
    dated = https.get("/support/search", query_string={"q": "INV-77", "from": today, "to": today})
    assert f"/support/requests/{pr.id}" in dated.text


def test_search_finds_each_request_of_an_account_page_charge(https):
    """One charge at the provider paid several requests: the agent pastes the group's
    intent id (what the merchant sees in Stripe) or its id and finds every request."""
    from portal.payments.models import PaymentGroup

    m = make_merchant()
    first, paid_first = paid_request(m, reference="G-1")
    second, paid_second = paid_request(m, reference="G-2")
    alone, _ = paid_request(m, reference="G-3")
    group = PaymentGroup(
        merchant_id=m.id,
        customer_reference="C-1",
        account_key=f"{m.id}:C-1",
        selection_key="k",
        amount=paid_first.amount + paid_second.amount,
        currency=paid_first.currency,
        status="succeeded",
        provider="sandbox",
        provider_payment_id="pi_group_intent",
    )
    db.session.add(group)
    db.session.flush()
    paid_first.group_id = paid_second.group_id = group.id
    db.session.commit()
    login(https, staff())
    for q in ["pi_group_intent", group.id]:
        page = https.get("/support/search", query_string={"q": q}).text
        assert f"/support/requests/{first.id}" in page, q
        assert f"/support/requests/{second.id}" in page, q
        assert f"/support/requests/{alone.id}" not in page, q
    other = https.get("/support/search", query_string={"q": "pi_another_intent"}).text
    assert f"/support/requests/{first.id}" not in other


def test_scoped_agent_never_sees_another_merchant(https):
    mine, theirs = make_merchant(name="Mine"), make_merchant(name="Theirs")
    own, other = make_request(mine), make_request(theirs, statement_body(reference="THEIRS"))
    login(https, staff(merchants=[mine.id]))
    assert https.get(f"/support/requests/{own.id}").status_code == 200
    assert https.get(f"/support/requests/{other.id}").status_code == 404
    assert https.get(f"/support/requests/{other.id}/confirm/resend_link").status_code == 404
    found = https.get("/support/search", query_string={"q": "THEIRS"}).text
    assert f"/support/requests/{other.id}" not in found and "Nothing found" in found


def test_support_cannot_void_or_refund(https):
    m = make_merchant()
    pr = make_request(m)
    login(https, staff())
    assert https.get(f"/support/requests/{pr.id}/confirm/void").status_code == 403
    resp = https.post(
        f"/support/requests/{pr.id}/do/void",
        data={"csrf_token": token(https, "/support/"), "reason": "because"},
    )
    assert resp.status_code == 403
    assert db.session.get(PaymentRequest, pr.id).status == "open"
    assert https.get("/support/audit").status_code == 403


def test_timeline_shows_the_whole_story(https, app):
    receiver = HTTPRecorder(lambda req: (500, {}, b"down")).start()
    try:
        m = make_merchant()
        add_endpoint(m.id, receiver.url, ["payment.succeeded"])
        db.session.commit()
        pr, payment = paid_request(m)
        app.config["PORTAL_CALLBACK_SCHEDULE"] = [0]
        run_due_jobs()
        login(https, staff())
        page = https.get(f"/support/requests/{pr.id}").text
        for text in (
            "Created",
            "Payment attempt",
            "Payment succeeded",
            payment.receipt_number,
            "Receipt email",
            "payment.succeeded",
            "dead-lettered",
            "500",
            "Raw JSON",
        ):
            assert text in page, text
    finally:
        receiver.stop()


def test_each_action_writes_its_audit_entry(https, app):
    receiver = HTTPRecorder(lambda req: (200, {}, b"ok")).start()
    try:
        m = make_merchant()
        add_endpoint(m.id, receiver.url, ["payment.succeeded"])
        db.session.commit()
        pr, payment = paid_request(m)
        run_due_jobs()
        event = db.session.query(Event).filter_by(type="payment.succeeded").one()
        open_pr = make_request(m, statement_body(reference="OPEN"))
        admin = staff("admin")
        login(https, admin)
        assert act(https, open_pr.id, "resend_link", "email").status_code == 303
        assert act(https, pr.id, "resend_receipt", payment.id).status_code == 303
        assert act(https, pr.id, "redeliver_callback", event.id).status_code == 303
        run_due_jobs()
        assert len(receiver.requests) == 2  # the redelivery is a new attempt
        assert db.session.query(CallbackAttempt).count() == 2
        assert act(https, open_pr.id, "void").status_code == 303
        assert act(https, pr.id, "refund", payment.id).status_code == 303
        assert db.session.get(PaymentRequest, open_pr.id).status == "void"
        assert db.session.query(Refund).one().amount == 12500
        assert db.session.query(LinkDelivery).count() == 1
        assert db.session.query(Job).filter_by(kind="send_receipt").count() == 2
        log = db.session.query(AuditLog).filter(AuditLog.action != "sign_in")
        log = log.order_by(AuditLog.id).all()
        assert [a.action for a in log] == [
            "resend_link",
            "resend_receipt",
            "redeliver_callback",
            "void",
            "refund",
        ]
        assert {a.staff_email for a in log} == {admin.email}
        assert {a.reason for a in log} == {"customer called"}
        audit = https.get("/support/audit", query_string={"action": "void"}).text
        assert open_pr.id in audit and "refund" not in audit.split("<tbody>")[1]
    finally:
        receiver.stop()


def test_actions_need_a_reason_and_never_happen_on_get(https):
    m = make_merchant()
    pr = make_request(m)
    login(https, staff())
    assert act(https, pr.id, "resend_link", "email", reason="").status_code == 422
    assert db.session.query(LinkDelivery).count() == 0
    https.get(f"/support/requests/{pr.id}/confirm/resend_link?target=email")
    assert db.session.query(LinkDelivery).count() == 0
    assert db.session.query(AuditLog).filter(AuditLog.action != "sign_in").count() == 0


def test_dashboard(https):
    m = make_merchant()
    paid_request(m)
    make_request(m, statement_body(reference="X"))
    flagged = start_payment(make_request(m, statement_body(reference="F")), None)
    flagged.flagged, flagged.flagged_reason = True, "amount mismatch"
    db.session.commit()
    login(https, staff())
    page = https.get("/support/").text
    assert "<svg" in page and "<rect" in page
    assert "amount mismatch" in page
    assert "€125.00" in page or "€ 125,00" in page or "125,00 €" in page


def test_console_speaks_french(https):
    login(https, staff())
    https.post("/support/language", data={"csrf_token": token(https, "/support/"), "lang": "fr"})
    assert "Tableau de bord" in https.get("/support/").text


def test_language_switch_never_redirects_elsewhere(https):
    login(https, staff())
    csrf = token(https, "/support/")
    for target in ("https://evil.example/", "//evil.example", "/support//evil"):
        resp = https.post(
            "/support/language", data={"csrf_token": csrf, "lang": "nl", "next": target}
        )
        assert resp.headers["Location"].endswith("/support/")
