"""The script inventory of docs/security.md, and what a page actually loads."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"


def _table_after(heading: str) -> list[str]:
    """First-column cells of the first markdown table after ``heading``."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    cells = []
    for line in section.splitlines():
        if line.startswith("## "):
            break
        match = re.match(r"\|\s*`([^`]+)`", line)
        if match:
            cells.append(match.group(1))
    return cells


def inventory() -> tuple[set[str], set[str]]:
    """(scripts, data blocks) listed in docs/security.md."""
    heading = "## Scripts the payment pages load"
    scripts = set(_table_after(heading))
    blocks = {cell for cell in scripts if cell.startswith("#")}
    return scripts - blocks, blocks


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.found.append(dict(attrs))
        for name, _value in attrs:
            if name.startswith("on"):  # inline event handlers are scripts too
                self.found.append({"inline-handler": name})
        if tag == "a" and any(v and v.strip().lower().startswith("javascript:") for _, v in attrs):
            self.found.append({"inline-handler": "javascript: URL"})


def scripts_of(html: str, stripe_js_url: str) -> list[str]:
    """Each script of a page as the inventory names it: a static path, ``STRIPE_JS_URL``,
    ``#id`` for a JSON data block; anything executable inline as ``inline: …``."""
    parser = _Scripts()
    parser.feed(html)
    names = []
    for attrs in parser.found:
        if "inline-handler" in attrs:
            names.append(f"inline: {attrs['inline-handler']}")
        elif attrs.get("src"):
            src = attrs["src"] or ""
            if src == stripe_js_url:
                names.append("STRIPE_JS_URL")
            else:
                parts = urlsplit(src)
                names.append(src if parts.netloc else parts.path)
        elif attrs.get("type") == "application/json":
            names.append(f"#{attrs.get('id')}")
        else:
            names.append("inline: <script>")
    return names
