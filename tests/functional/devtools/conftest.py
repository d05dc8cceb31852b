"""A development app (``PORTAL_ENV=development``, as ``make run`` has it), where the start
page, the mail viewer and the SMS log exist; mail and SMS go to the test's own folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db
from tests.conftest import app_in_context, make_app

DEV_BASE_URL = "http://127.0.0.1:5000"


def make_dev_app(database_url: str, folder: Path, **overrides: object) -> Flask:
    config: dict[str, object] = {
        "env": "development",
        "base_url": DEV_BASE_URL,
        "mail_url": f"file://{folder / 'mail'}",
        "sms_log": str(folder / "sms.log"),
        "RATELIMIT_ENABLED": False,  # counters would leak between apps (tests/conftest.py)
    }
    config.update(overrides)
    return make_app(database_url, **config)


@pytest.fixture
def dev_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """On SQLite and PostgreSQL, like ``app``."""
    yield from app_in_context(make_dev_app(database_url, tmp_path), database_url)


@pytest.fixture
def dev_sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    """SQLite only: for the tools that read files, not the database."""
    url = f"sqlite:///{tmp_path / 'portal.db'}"
    yield from app_in_context(make_dev_app(url, tmp_path), url)


@contextmanager
def tool_pages(folder: Path, **overrides: object) -> Iterator[tuple[dict[str, object], object]]:
    """Every page of the tools, rendered by a development app that sent one mail:
    ({name: response}, the response of that mail's HTML part)."""
    from portal.notifications.mail import send_mail

    url = f"sqlite:///{folder / 'tools.db'}"
    for app in app_in_context(make_dev_app(url, folder, **overrides), url):
        send_mail("jan@example.com", "Hello", "Text part", "<p>HTML part</p><script>x()</script>")
        name = next((folder / "mail").glob("*.eml")).stem
        client: FlaskClient = app.test_client()
        pages = {
            "start page": client.get("/"),
            "mail viewer": client.get("/dev/mail"),
            "one message": client.get(f"/dev/mail/{name}"),
            "SMS log": client.get("/dev/sms"),
            "api reference": client.get("/docs/api"),
        }
        yield pages, client.get(f"/dev/mail/{name}/html")
        db.engine.dispose()
