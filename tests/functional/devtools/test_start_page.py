"""``/`` in development: what a newcomer needs after ``make run``; in production and tests
the plain 404 page, with nothing of it."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from portal.config import ConfigError
from portal.demo import DEMO_API_KEY, DEMO_LEDGER_SECRET
from portal.extensions import db
from portal.links import request_id_from_token
from portal.payment_requests.models import PaymentRequest
from portal.payments.services import fulfil_payment, start_payment
from portal.providers.sandbox import TEST_CARDS
from tests.conftest import make_app
from tests.functional.devtools.conftest import DEV_BASE_URL

LINK = re.compile(re.escape(DEV_BASE_URL) + r"/p/[A-Za-z0-9_.-]+")


def demo(app, *args):
    result = app.test_cli_runner().invoke(args=["demo", *args])
    assert result.exit_code == 0, result.output
    return result.output


def links_of(output: str) -> dict[str, str]:
    return {
        line.split()[0]: line.split()[1]
        for line in output.splitlines()
        if line.split() and line.split()[0] in ("statement", "wallet_topup", "order_deposit")
    }


def section(page: str, anchor: str) -> str:
    """The text of one ``<section id=…>`` of the page."""
    start = page.index(f'id="{anchor}"')
    return page[start : page.index("</section>", start)]


def pay(url: str) -> None:
    pr = db.session.get(PaymentRequest, request_id_from_token(url.rsplit("/", 1)[1]))
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()


def test_the_start_page_has_what_a_newcomer_needs(dev_app):
    links = links_of(demo(dev_app))
    page = dev_app.test_client().get("/")
    assert page.status_code == 200
    text = page.text
    for url in links.values():
        assert url in section(text, "links"), url
    assert DEMO_API_KEY in section(text, "api")
    assert 'href="/docs/api"' in section(text, "api")
    assert 'href="/api/v1/openapi.json"' in section(text, "api")
    for number, _ in TEST_CARDS:
        spaced = " ".join(number[i : i + 4] for i in range(0, 16, 4))
        assert spaced in section(text, "cards")
    console = section(text, "console")
    assert 'href="/support/"' in console
    assert "staff create --email you@example.com --role support" in console
    assert f"--secret {DEMO_LEDGER_SECRET}" in section(text, "callbacks")
    assert "No mail yet" in section(text, "mail")
    assert "No SMS yet" in section(text, "sms")
    assert "Ctrl</kbd>+<kbd>C" in text  # how to stop it
    assert page.headers["Content-Type"].startswith("text/html")


def test_every_demo_link_on_the_page_opens(dev_app):
    demo(dev_app)
    client = dev_app.test_client()
    found = set(LINK.findall(section(client.get("/").text, "links")))
    assert len(found) == 3
    for url in found:
        assert client.get(url.removeprefix(DEV_BASE_URL)).status_code == 200, url


def test_a_paid_demo_link_is_listed_as_paid_and_the_next_demo_makes_a_fresh_one(dev_app):
    first = links_of(demo(dev_app))
    pay(first["statement"])
    client = dev_app.test_client()
    page = client.get("/").text
    assert first["statement"] in section(page, "links").split("<h3>Paid</h3>")[1]
    assert first["statement"] not in section(page, "links").split("<h3>Paid</h3>")[0]

    again = demo(dev_app)
    second = links_of(again)
    assert "(a new statement link: the previous one was paid, voided or expired)" in again
    assert second["statement"] != first["statement"]
    assert second["wallet_topup"] == first["wallet_topup"]  # still open: reused
    assert second["order_deposit"] == first["order_deposit"]
    opened, paid = section(client.get("/").text, "links").split("<h3>Paid</h3>")
    assert second["statement"] in opened and first["statement"] in paid
    assert escape("€128.40") in paid
    # and a third run has nothing to replace: the same output as the second, minus the note
    assert demo(dev_app) == again.replace(
        "(a new statement link: the previous one was paid, voided or expired)\n", ""
    )


def test_before_any_demo_the_page_says_how_to_make_one(dev_app):
    page = dev_app.test_client().get("/")
    assert page.status_code == 200
    assert "No demo data yet" in page.text and "flask --app portal demo" in page.text


def test_the_demo_ledger_uses_the_documented_secret_and_is_listed(dev_app):
    out = demo(dev_app, "--ledger", "http://127.0.0.1:8765/callbacks")
    assert (
        f".venv/bin/python examples/ledger_receiver.py --port 8765 --secret {DEMO_LEDGER_SECRET}"
        in out
    )
    again = demo(dev_app, "--ledger", "http://127.0.0.1:8765/callbacks")
    assert again == out  # the same endpoint, reused
    callbacks = section(dev_app.test_client().get("/").text, "callbacks")
    assert "http://127.0.0.1:8765/callbacks" in callbacks and "the demo secret" in callbacks


def test_the_demo_ledger_refuses_loopback_unless_allowed(dev_app):
    dev_app.config["PORTAL_ALLOW_PRIVATE_CALLBACKS"] = False
    result = dev_app.test_cli_runner().invoke(
        args=["demo", "--ledger", "http://127.0.0.1:8765/callbacks"]
    )
    assert result.exit_code != 0
    assert "export PORTAL_ALLOW_PRIVATE_CALLBACKS=1" in result.output


def _production_app(database_url):
    return make_app(
        database_url,
        env="production",
        secret_keys=["p" * 40],
        payment_provider="stripe",
        stripe_secret_key="sk_test_x",
        stripe_webhook_secret="whsec_x",
        allow_private_callbacks=False,
    )


@pytest.mark.parametrize("env", ["production", "test"])
def test_elsewhere_the_root_is_the_plain_page_and_the_tools_do_not_exist(app, env):
    from tests.factories import make_merchant, make_request

    make_request(make_merchant(name="Demo Corner Shop"))  # data the page must not show
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if env == "production" and url.startswith("sqlite"):
        # Production runs on PostgreSQL only (the PostgreSQL run checks the page).
        with pytest.raises(ConfigError, match="PostgreSQL"):
            _production_app(url)
        return
    other = _production_app(url) if env == "production" else app
    try:
        assert "devtools" not in other.blueprints
        client = other.test_client()
        root = client.get("/")
        assert root.status_code == 404
        assert "This link is not available" in root.text
        for leak in ("/p/", "sk_portal", "Corner", "development", "4242", "/support/", "mail"):
            assert leak not in root.text, leak
        for path in ("/dev/mail", "/dev/sms", "/dev/mail/0123abcd", "/dev/mail/0123abcd/html"):
            assert client.get(path).status_code == 404, path
    finally:
        if other is not app:
            with other.app_context():
                db.session.remove()
                db.engine.dispose()
