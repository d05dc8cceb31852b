"""``/`` (the start page), ``/dev/mail`` (the mail viewer) and ``/dev/sms`` (the SMS log).

A message's HTML part is never put into our own page: it is served on its own URL,
with a policy that allows no script, no form, no plugin and no framing but by us,
and sandboxes the document (a unique origin), then shown in an ``<iframe sandbox>``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, g, render_template, request

from portal.delivery.sms import recent_sms, sms_log_file
from portal.demo import (
    DEMO_LEDGER_SECRET,
    DEMO_OWNER_EMAIL,
    DEMO_OWNER_PASSWORD,
    DEMO_OWNER_TOTP,
    demo_overview,
    test_cards,
)
from portal.devtools import mailbox
from portal.notifications.mail import mail_folder

bp = Blueprint("devtools", __name__)

# The policy of a mail's HTML part: its own inline styles and images, nothing else.
MAIL_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
    "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox"
)


@bp.before_request
def _this_machine_only() -> None:
    """The tools show the demo key, links and every message sent: only to this machine."""
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        abort(404)
    g.locale = "en"  # the tools are for developers, in English


def _folder() -> Path | None:
    return mail_folder(current_app.config["PORTAL_MAIL_URL"])


@bp.get("/")
def start() -> str:

    mails, mail_count = mailbox.recent(_folder(), limit=5)
    config = current_app.config
    return render_template(
        "devtools/start.html",
        demo=demo_overview(),
        demo_owner={
            "email": DEMO_OWNER_EMAIL,
            "password": DEMO_OWNER_PASSWORD,
            "totp_secret": DEMO_OWNER_TOTP,
        },
        cards=test_cards(),
        mails=mails,
        mail_count=mail_count,
        mail_url=config["PORTAL_MAIL_URL"],
        mail_folder=_folder(),
        sms=recent_sms(sms_log_file(config), limit=5),
        sms_url=config["PORTAL_SMS_URL"],
        sms_log=sms_log_file(config),
        base_url=config["PORTAL_BASE_URL"],
        ledger_secret=DEMO_LEDGER_SECRET,
    )


@bp.get("/dev/mail")
def mail_list() -> str:
    mails, count = mailbox.recent(_folder(), limit=200)
    return render_template(
        "devtools/mail.html",
        mails=mails,
        count=count,
        mail_url=current_app.config["PORTAL_MAIL_URL"],
        mail_folder=_folder(),
    )


@bp.get("/dev/mail/<name>")
def mail_message(name: str) -> str:
    mail = mailbox.read(_folder(), name)
    if mail is None:
        abort(404)
    return render_template("devtools/message.html", mail=mail)


@bp.get("/dev/mail/<name>/html")
def mail_html(name: str) -> Response:
    """The message's HTML part, as it was sent, for the sandboxed frame only."""
    mail = mailbox.read(_folder(), name)
    if mail is None or mail.html is None:
        abort(404)
    response = Response(mail.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = MAIL_HTML_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/dev/sms")
def sms_list() -> str:
    config = current_app.config
    return render_template(
        "devtools/sms.html",
        sms=recent_sms(sms_log_file(config), limit=200),
        sms_url=config["PORTAL_SMS_URL"],
        sms_log=sms_log_file(config),
    )


def init_app(app: Flask) -> None:
    if app.config["PORTAL_ENV"] == "development":
        app.register_blueprint(bp)
