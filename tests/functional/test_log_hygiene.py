"""What the logs keep of hostile input: no link signature whatever was inserted into the
link, no API key sent as a request id, the caller on every authenticated API line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from portal import logs
from portal.links import link_token
from tests.factories import make_request


@pytest.fixture
def log_text(app) -> Iterator[io.StringIO]:
    """The portal's own handler (mask filter and text format) on the root logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.MaskSecrets())
    handler.setFormatter(logs.TextFormatter(logs.TEXT_FORMAT))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _signature(token: str) -> str:
    return token.split(".", 1)[1]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace(".", "\u200b.", 1),  # a zero-width space before the dot
        lambda t: t[:10] + "\u200b" + t[10:],  # inside the request id
        lambda t: t[: len(t) - 8] + "\u200b" + t[len(t) - 8 :],  # inside the signature
        lambda t: t.replace(".", " ", 1),  # a blank instead of the dot
        lambda t: t.replace(".", "/", 1),  # a slash instead of the dot
        lambda t: t.replace(".", "", 1),  # no dot at all
        lambda t: t + "é",
    ],
)
def test_a_mangled_link_is_logged_without_its_signature(client, merchant, log_text, mangle):
    token = link_token(make_request(merchant).id)
    signature = _signature(token)
    resp = client.get("/p/" + quote(mangle(token), safe="/"))
    assert resp.status_code in (404, 410)
    resp = client.get("/p/" + quote(mangle(token), safe="/") + "/qr.svg")
    assert resp.status_code in (404, 410)
    text = log_text.getvalue()
    assert "/p/" in text  # the lines were written
    # Neither the signature nor any long piece of it is left.
    assert signature not in text and signature[:12] not in text and signature[-12:] not in text


def test_an_api_key_sent_as_request_id_is_replaced_and_never_logged(client, merchant, log_text):
    resp = client.get("/healthz", headers={"X-Request-Id": merchant.api_key})
    assert resp.headers["X-Request-Id"] != merchant.api_key
    resp = client.get(
        "/api/v1/payment-requests",
        headers={"Authorization": f"Bearer {merchant.api_key}", "X-Request-Id": merchant.api_key},
    )
    assert resp.status_code == 200
    assert resp.headers["X-Request-Id"] != merchant.api_key
    assert merchant.api_key.split("_")[-1] not in log_text.getvalue()


@pytest.mark.parametrize(
    "asked",
    ["sk_portal_abcdefgh12345678", "whsec_abcdefgh", "pr_5kWqAbCdEfGhIjKlMnOpQr.sig", "a" * 65],
)
def test_request_ids_of_a_secret_or_unusual_shape_are_replaced(client, asked):
    assert client.get("/healthz", headers={"X-Request-Id": asked}).headers["X-Request-Id"] != asked


@pytest.mark.parametrize("asked", ["0f8fad5b-d9cb-469f-a165-70867728950e", "abcdef0123456789"])
def test_request_ids_of_a_safe_shape_are_kept(client, asked):
    assert client.get("/healthz", headers={"X-Request-Id": asked}).headers["X-Request-Id"] == asked


def test_authenticated_api_lines_name_the_merchant_and_the_key(client, merchant, log_text):
    from sqlalchemy import select

    from portal.extensions import db
    from portal.merchants.models import ApiKey

    key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.merchant_id == merchant.id))
    resp = client.get(
        "/api/v1/payment-requests", headers={"Authorization": f"Bearer {merchant.api_key}"}
    )
    assert resp.status_code == 200
    lines = [line for line in log_text.getvalue().splitlines() if "/api/v1/" in line]
    assert lines and all(f"merchant={merchant.id} api_key={key_id}" in line for line in lines)
    # A refused key names nobody.
    log_text.truncate(0)
    client.get("/api/v1/payment-requests", headers={"Authorization": "Bearer sk_portal_nope"})
    line = next(line for line in log_text.getvalue().splitlines() if "/api/v1/" in line)
    assert "merchant=" not in line and "api_key=" not in line


def test_json_lines_carry_the_caller_too(client, merchant, app):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.MaskSecrets())
    handler.setFormatter(logs.JsonFormatter())
    access = logging.getLogger("portal.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        client.get(
            "/api/v1/payment-requests", headers={"Authorization": f"Bearer {merchant.api_key}"}
        )
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["merchant"] == merchant.id and entry["api_key"].startswith("key_")
