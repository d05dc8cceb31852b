"""A real portal server (werkzeug, in a thread) and headless Debian Chromium via Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.extensions import db
from portal.links import link_url
from tests.conftest import make_app
from tests.factories import make_merchant, make_request
from tests.servers import serve_wsgi

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str:
    path = os.environ.get("PORTAL_TEST_CHROMIUM") or shutil.which("chromium") or ""
    if not path:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def new_link(app, body: dict, *, merchant: str = "Test Shop", locale: str | None = None):
    """A merchant named ``merchant`` and one request made of ``body`` (for a customer who
    reads ``locale``); returns the request's link and its id."""
    with app.app_context():
        if locale:
            body["customer"]["locale"] = locale
        pr = make_request(make_merchant(name=merchant), body)
        return link_url(pr.id), pr.id


@pytest.fixture
def live_server(tmp_path) -> Iterator[tuple[str, object]]:
    """The portal on a free loopback port, with its own SQLite file."""
    app = make_app(f"sqlite:///{tmp_path / 'e2e.db'}")
    with app.app_context():
        db.create_all()
    with serve_wsgi(app) as base:
        app.config["PORTAL_BASE_URL"] = base
        yield base, app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shot(request):
    ARTIFACTS.mkdir(exist_ok=True)

    def save(page, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{name}.png"), full_page=True)

    return save
