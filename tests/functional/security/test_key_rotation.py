"""Secret key rotation and form lifetimes: a form opened before a rotation still submits
after it; console forms live an hour, pay forms a day; an expired form gets a friendly
page that leads back to a fresh one."""

from __future__ import annotations

import time

import pytest
from flask import g
from itsdangerous import TimestampSigner

from portal.extensions import db
from portal.links import link_token
from tests.factories import make_request
from tests.functional.customer.test_pages import csrf, page
from tests.functional.support.test_console import CSRF, https_client, login, staff

OLD = "old-secret-key-" + "o" * 32
NEW = "new-secret-key-" + "n" * 32
# The expired-form page, in whichever language the page was asked in.
EXPIRED = ("This form has expired", "Ce formulaire a expiré", "Dit formulier is verlopen")
ROTATED = ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "WTF_CSRF_SECRET_KEY", "PORTAL_SECRET_KEYS")


def use_keys(app, *keys: str) -> None:
    """What a restart with ``PORTAL_SECRET_KEYS=<keys>`` gives the app."""
    settings = app.extensions["portal_settings"].model_copy(update={"secret_keys": list(keys)})
    values = settings.as_flask_config()
    for name in ROTATED:
        app.config[name] = values[name]


def later(monkeypatch, seconds: int) -> None:
    """Tokens read as if ``seconds`` had passed (itsdangerous's own clock hook)."""
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) + seconds)


@pytest.fixture
def old_keys(app):
    use_keys(app, OLD)
    return app


def test_a_pay_form_opened_before_a_rotation_submits_after_it(old_keys, client, merchant):
    pr = make_request(merchant)
    token = link_token(pr.id)  # a link sent before the rotation
    form = csrf(page(client, pr))
    use_keys(old_keys, NEW, OLD)
    resp = client.post(f"/p/{token}/pay", data={"csrf_token": form})
    assert resp.status_code == 303, resp.text
    assert "/checkout/" in resp.headers["Location"]
    # A form opened after it is signed with the new key alone: it still submits once
    # the old key is gone.
    fresh_client = old_keys.test_client()
    g.pop("csrf_token", None)  # the tests' one app context would hand back the old token
    fresh = csrf(fresh_client.get(f"/p/{token}"))
    use_keys(old_keys, NEW)
    resp = fresh_client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": fresh})
    assert resp.status_code == 303


def test_once_the_old_key_is_removed_an_old_form_gets_the_expired_page(old_keys, client, merchant):
    pr = make_request(merchant)
    form = csrf(page(client, pr))
    use_keys(old_keys, NEW)
    resp = client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": form})
    assert resp.status_code == 400
    assert any(text in resp.text for text in EXPIRED)
    assert f'href="/p/{link_token(pr.id)}"' in resp.text
    assert db.session.get(type(pr), pr.id).status == "open"


def test_a_console_form_opened_before_a_rotation_submits_after_it(old_keys, merchant):
    https = https_client(old_keys)
    user = staff()
    form = CSRF.search(https.get("/support/login").text).group(1)
    use_keys(old_keys, NEW, OLD)
    resp = https.post(
        "/support/login",
        data={"csrf_token": form, "email": user.email, "password": "correct horse battery"},
    )
    assert resp.status_code == 303
    assert https.get("/support/").status_code == 200


def test_console_forms_expire_after_an_hour_with_a_friendly_page(app, merchant, monkeypatch):
    https = https_client(app)
    assert login(https, staff()).status_code == 303
    pr = make_request(merchant)
    confirm = https.get(f"/support/requests/{pr.id}/confirm/resend_link?target=email")
    form = CSRF.search(confirm.text).group(1)
    later(monkeypatch, 3601)
    https.set_cookie("portal_support_locale", "fr", domain="portal.test", path="/support")
    resp = https.post(
        f"/support/requests/{pr.id}/do/resend_link",
        data={"csrf_token": form, "reason": "customer called", "target": "email"},
    )
    assert resp.status_code == 400
    assert "Ce formulaire a expiré" in resp.text
    assert f'href="/support/requests/{pr.id}/confirm/resend_link"' in resp.text
    # Within the hour it is sent.
    later(monkeypatch, 3500)
    resp = https.post(
        f"/support/requests/{pr.id}/do/resend_link",
        data={"csrf_token": form, "reason": "customer called", "target": "email"},
    )
    assert resp.status_code == 303


def test_pay_forms_live_a_day_but_not_forever(client, merchant, monkeypatch):
    pr = make_request(merchant)
    form = csrf(page(client, pr))
    later(monkeypatch, 86400 + 5)
    resp = client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": form})
    assert resp.status_code == 400 and any(text in resp.text for text in EXPIRED)
    later(monkeypatch, 3 * 3600)  # an hour is nothing for a customer's tab
    resp = client.post(f"/p/{link_token(pr.id)}/pay", data={"csrf_token": form})
    assert resp.status_code == 303


@pytest.mark.parametrize(
    ("path", "back", "signed_in"),
    [("/support/login", "/support/login", False), ("/support/language", "/support/", True),
     ("/support/logout", "/support/", True)],
)  # fmt: skip
def test_the_expired_page_leads_to_the_page_that_shows_the_form(
    app, monkeypatch, path, back, signed_in
):
    https = https_client(app)
    if signed_in:
        assert login(https, staff()).status_code == 303
    form = CSRF.search(https.get("/support/" if signed_in else "/support/login").text).group(1)
    later(monkeypatch, 3601)
    resp = https.post(path, data={"csrf_token": form, "email": "a@b.c", "password": "x"})
    assert resp.status_code == 400
    assert any(text in resp.text for text in EXPIRED)
    assert f'href="{back}"' in resp.text
