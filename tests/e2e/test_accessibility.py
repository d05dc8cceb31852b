"""axe-core (WCAG 2.2 A and AA rules) finds nothing on any customer page, in any state,
in any language, on a phone and on a desktop.

axe-core comes from npm, vendored unchanged under ``tests/e2e/vendor/axe-core-<version>/``
(with its licences) and pinned by its SHA-256, the one axe's own ``sri-history.json``
lists for this version. It is injected through the DevTools protocol (not a ``<script>``
tag), so the pages keep their strict CSP while it runs."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from tests import gallery

pytestmark = pytest.mark.e2e

AXE_VERSION = "4.14.1"
AXE = Path(__file__).parent / "vendor" / f"axe-core-{AXE_VERSION}" / "axe.min.js"
# sha256 of axe.min.js as published (npm pack axe-core@4.14.1; sri-history.json agrees).
AXE_SHA256 = "sha256-KTSJmUUM3yhJqOcLeRL8LahahJ2jnA0NU5T1HUqe2Vw="
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]


def axe_source() -> str:
    data = AXE.read_bytes()
    digest = "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert digest == AXE_SHA256, "the vendored axe-core changed: it must stay the npm file"
    return data.decode()


def violations(page, source: str) -> list[str]:
    """axe's violations on the page as it is now, one line each."""
    page.evaluate(source)
    result = page.evaluate(
        "options => axe.run(document, options)",
        {"runOnly": {"type": "tag", "values": RULES}, "resultTypes": ["violations"]},
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + json.dumps([n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
    ]


def test_the_vendored_axe_core_is_the_published_file():
    assert axe_source().startswith("/*! axe v" + AXE_VERSION)


@pytest.mark.parametrize("locale", gallery.LOCALES)
def test_no_customer_page_has_an_accessibility_violation(live_server, browser, locale):
    base, app = live_server
    source = axe_source()
    shots = gallery.build(app, locale)
    found: dict[str, list[str]] = {}
    for width, height in ((390, 844), (1280, 900)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        for shot in shots:
            page.goto(base + shot.path)
            if shot.steps:
                shot.steps(page)
            problems = violations(page, source)
            if problems:
                found[f"{shot.name} at {width}px"] = problems
        context.close()
    assert len(shots) >= 22  # every kind and state (see tests/gallery.py)
    assert found == {}


def test_the_check_finds_what_is_wrong(browser):
    """The same check on a page with a missing alt text and low contrast reports both."""
    page = browser.new_page()
    page.set_content(
        '<html lang="en"><title>t</title><main><img src="data:,">'
        '<p style="color:#bbb;background:#fff">faint</p></main></html>'
    )
    found = " ".join(violations(page, axe_source()))
    assert "image-alt" in found and "color-contrast" in found
