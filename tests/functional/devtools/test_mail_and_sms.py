"""The mail viewer and the SMS log of the development start page: what the portal sent,
newest first; a mail's HTML only ever inside a sandboxed frame, never in our page."""

from __future__ import annotations

import json
import os
import re
import time

from portal.delivery import sms as sms_module
from portal.delivery.shortlinks import short_url
from portal.delivery.sms import LOG_KEEP, recent_sms, send_sms, sms_log_file
from portal.devtools.views import MAIL_HTML_POLICY
from portal.jobs.worker import run_due_jobs
from portal.notifications.mail import mail_folder, send_mail
from tests.factories import make_merchant, statement_body


def _directives(csp: str) -> dict[str, str]:
    return {
        part.strip().split(" ", 1)[0]: [*part.strip().split(" ", 1), ""][1]
        for part in csp.split(";")
        if part.strip()
    }


def _send(subject: str, *, html: str | None, text: str = "Hello.", age: float = 0) -> str:
    send_mail("camille@example.com", subject, text, html)
    from flask import current_app

    folder = mail_folder(current_app.config["PORTAL_MAIL_URL"])
    newest = max(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    stamp = time.time() - age
    os.utime(newest, (stamp, stamp))
    return newest.stem


def test_the_mail_viewer_lists_newest_first(dev_sqlite_app):
    older = _send("Older message", html="<p>old</p>", age=60)
    newer = _send("Newer message", html="<p>new</p>", age=1)
    client = dev_sqlite_app.test_client()
    listing = client.get("/dev/mail").text
    assert listing.index("Newer message") < listing.index("Older message")
    assert f'href="/dev/mail/{newer}"' in listing and f'href="/dev/mail/{older}"' in listing
    start = client.get("/").text
    assert start.index("Newer message") < start.index("Older message")
    assert "All 2 messages" in start


def test_a_message_shows_its_text_and_its_html_only_in_a_sandboxed_frame(dev_sqlite_app):
    html = (
        '<p style="color:#123456">HTML-ONLY-MARKER</p>'
        '<script>parent.document.title="pwned"</script><a href="http://127.0.0.1:5000/p/x">Pay</a>'
    )
    text = "Pay <b>here</b>: http://127.0.0.1:5000/p/pr_abc.SIG\nThanks."
    name = _send("Your statement", html=html, text=text)
    client = dev_sqlite_app.test_client()
    page = client.get(f"/dev/mail/{name}")
    assert page.status_code == 200
    assert "HTML-ONLY-MARKER" not in page.text and "<script>parent" not in page.text
    assert "Pay &lt;b&gt;here&lt;/b&gt;" in page.text  # the text part, escaped
    assert 'href="http://127.0.0.1:5000/p/pr_abc.SIG"' in page.text  # its links, to click
    frame = re.search(r"<iframe[^>]*>", page.text).group(0)
    assert " sandbox " in frame or re.search(r"\ssandbox(\s|>)", frame), frame
    assert "allow-" not in frame  # no script, no same origin, no popups, no forms
    assert f'src="/dev/mail/{name}/html"' in frame
    # the page itself keeps the portal's policy
    csp = _directives(page.headers["Content-Security-Policy"])
    assert csp["default-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert csp["frame-src"] == "'self'"

    part = client.get(f"/dev/mail/{name}/html")
    assert part.status_code == 200 and part.text.rstrip("\n") == html  # as sent (+ a newline)
    assert part.headers["Content-Type"].startswith("text/html")
    assert part.headers["Content-Security-Policy"] == MAIL_HTML_POLICY
    policy = _directives(part.headers["Content-Security-Policy"])
    assert policy["default-src"] == "'none'" and "script-src" not in policy
    assert "sandbox" in policy and policy["sandbox"] == ""
    assert policy["frame-ancestors"] == "'self'" and policy["form-action"] == "'none'"
    assert part.headers["X-Content-Type-Options"] == "nosniff"
    assert part.headers["Referrer-Policy"] == "no-referrer"
    assert part.headers["Cache-Control"] == "no-store"


def test_a_message_without_an_html_part_says_so(dev_sqlite_app):
    name = _send("Plain only", html=None, text="Just text.")
    client = dev_sqlite_app.test_client()
    page = client.get(f"/dev/mail/{name}")
    assert page.status_code == 200 and "no HTML part" in page.text and "<iframe" not in page.text
    assert client.get(f"/dev/mail/{name}/html").status_code == 404


def test_the_viewer_reads_only_its_own_folder(dev_sqlite_app, tmp_path):
    (tmp_path / "secret.eml").write_text("Subject: outside the mail folder\n\nno")
    client = dev_sqlite_app.test_client()
    for name in ("..%2Fsecret", "../secret", "..", "secret.eml", "%2e%2e", "a" * 81, "nope"):
        for suffix in ("", "/html"):
            resp = client.get(f"/dev/mail/{name}{suffix}")
            assert resp.status_code == 404, (name, suffix, resp.status_code)
            assert "outside the mail folder" not in resp.text


def test_with_another_transport_the_viewer_says_where_mail_goes(dev_sqlite_app):
    dev_sqlite_app.config["PORTAL_MAIL_URL"] = "smtp://user:secret@mail.example.com:587"
    text = dev_sqlite_app.test_client().get("/dev/mail").text
    assert "mail.example.com:587" in text and "file://" in text
    assert "secret" not in text


def test_console_sms_are_kept_in_the_file_log_newest_first(dev_sqlite_app, tmp_path):
    path = sms_log_file(dev_sqlite_app.config)
    assert path == tmp_path / "sms.log"
    for n in range(3):
        send_sms("console", "+32470123456", f"message {n}", log_file=path)
    assert [m["body"] for m in recent_sms(path)] == ["message 2", "message 1", "message 0"]
    listing = dev_sqlite_app.test_client().get("/dev/sms").text
    assert listing.index("message 2") < listing.index("message 0")
    assert "+32470123456" in listing


def test_a_sent_link_shows_up_in_the_sms_log_and_the_mail_viewer(dev_sqlite_app):
    merchant = make_merchant()
    body = statement_body(send=["email", "sms"])
    body["customer"] |= {"phone": "+32470123456", "email": "jan@example.com"}
    client = dev_sqlite_app.test_client()
    created = client.post("/api/v1/payment-requests", json=body, headers=merchant.headers)
    assert created.status_code == 201, created.json
    assert run_due_jobs() == 2
    start = client.get("/").text
    [sms] = recent_sms(sms_log_file(dev_sqlite_app.config))
    # the SMS carries the request's short link (/s/<code>), which leads to its page
    assert short_url(created.json["id"]) in sms["body"] and sms["to"] == "+32470123456"
    assert sms["body"] in start
    assert "jan@example.com" in start.split('id="mail"')[1]


def test_the_file_log_stays_small(tmp_path, monkeypatch):
    monkeypatch.setattr(sms_module, "LOG_MAX_BYTES", 4096)
    path = tmp_path / "sms.log"
    for n in range(LOG_KEEP * 3):
        send_sms("console", "+32470123456", f"message {n} " + "x" * 40, log_file=path)
    lines = path.read_text().splitlines()
    assert len(lines) <= LOG_KEEP + 4096 // 60
    assert json.loads(lines[-1])["body"].startswith(f"message {LOG_KEEP * 3 - 1} ")
    assert [m["body"].split()[1] for m in recent_sms(path, limit=2)] == [
        str(LOG_KEEP * 3 - 1),
        str(LOG_KEEP * 3 - 2),
    ]


def test_the_file_log_is_for_development_unless_set(tmp_path):
    assert sms_log_file({"PORTAL_ENV": "test", "PORTAL_SMS_LOG": ""}) is None
    assert sms_log_file({"PORTAL_ENV": "production", "PORTAL_SMS_LOG": ""}) is None
    dev = sms_log_file({"PORTAL_ENV": "development", "PORTAL_SMS_LOG": ""})
    assert dev is not None and dev.parts[-2:] == ("var", "sms.log")
    assert sms_log_file({"PORTAL_ENV": "development", "PORTAL_SMS_LOG": "off"}) is None
    given = tmp_path / "s.log"
    assert sms_log_file({"PORTAL_ENV": "test", "PORTAL_SMS_LOG": str(given)}) == given
    assert recent_sms(None) == [] and recent_sms(tmp_path / "missing.log") == []


def test_the_tools_answer_this_machine_only(dev_sqlite_app):
    name = _send("Hidden", html="<p>x</p>")
    client = dev_sqlite_app.test_client()
    paths = ["/", "/dev/mail", f"/dev/mail/{name}", f"/dev/mail/{name}/html", "/dev/sms"]
    for address in ("192.0.2.10", "10.0.0.5", "2001:db8::1", ""):
        for path in paths:
            resp = client.get(path, environ_base={"REMOTE_ADDR": address})
            assert resp.status_code == 404, (address, path)
            assert "Hidden" not in resp.text and "sk_portal" not in resp.text
    for address in ("127.0.0.1", "127.0.0.2", "::1"):
        for path in paths:
            assert client.get(path, environ_base={"REMOTE_ADDR": address}).status_code == 200
