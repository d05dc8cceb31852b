"""Render every customer page and e-mail, in every state and language, at 390 px and
1280 px, into docs/screenshots/<locale>/<page>-<width>.png (regenerated, not hand-made).

    .venv/bin/python scripts/screenshots.py                 # all four languages
    .venv/bin/python scripts/screenshots.py --locales en fr --out /tmp/shots

Needs the test extra (Playwright) and Chromium (``PORTAL_TEST_CHROMIUM`` or
``chromium`` on PATH). The portal runs on a throw-away SQLite file with the sandbox
provider; the e-mails are the ones its worker really sends (written to a folder),
each shown as its HTML part. The states are those of tests/gallery.py, which the
accessibility test checks too.
"""

from __future__ import annotations

import argparse
import email
import os
import re
import shutil
import sys
import tempfile
from email import policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from portal.extensions import db  # noqa: E402
from portal.jobs.worker import run_due_jobs  # noqa: E402
from tests import gallery  # noqa: E402
from tests.conftest import make_app  # noqa: E402
from tests.servers import serve_wsgi  # noqa: E402

WIDTHS = ((390, 844), (1280, 900))


def _chromium() -> str:
    path = os.environ.get("PORTAL_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        sys.exit("Chromium is needed: apt-get install chromium, or set PORTAL_TEST_CHROMIUM")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def _mails(folder: Path) -> list[tuple[str, str]]:
    """(name, HTML) of each e-mail the worker wrote, oldest first."""
    found = []
    for path in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        html = message.get_body(("html",))
        if html is not None:
            subject = str(message["Subject"]).split(":", 1)[-1]  # without the shop's name
            found.append((f"email-{len(found) + 1}-{_slug(subject)}", html.get_content()))
    return found


def _shoot(page, out: Path, name: str, width: int) -> Path:
    target = out / f"{name}-{width}.png"
    page.screenshot(path=str(target), full_page=True)
    return target


def render(locales: list[str], out: Path) -> list[Path]:
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        mail = Path(tmp) / "mail"
        app = make_app(f"sqlite:///{Path(tmp) / 'shots.db'}", PORTAL_MAIL_URL=f"file://{mail}")
        with app.app_context():
            db.create_all()
        with serve_wsgi(app) as base, sync_playwright() as pw:
            app.config["PORTAL_BASE_URL"] = base
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            for locale in locales:
                folder = out / locale
                folder.mkdir(parents=True, exist_ok=True)
                for old in mail.glob("*.eml") if mail.exists() else ():
                    old.unlink()
                shots = gallery.build(app, locale)
                with app.app_context():
                    run_due_jobs()
                mails = _mails(mail) if mail.exists() else []
                for width, height in WIDTHS:
                    context = browser.new_context(viewport={"width": width, "height": height})
                    page = context.new_page()
                    for shot in shots:
                        page.goto(base + shot.path)
                        if shot.steps:
                            shot.steps(page)
                        written.append(_shoot(page, folder, shot.name, width))
                    for name, html in mails:
                        page.set_content(html)
                        written.append(_shoot(page, folder, name, width))
                    context.close()
            browser.close()
        with app.app_context():
            db.engine.dispose()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locales", nargs="+", default=list(gallery.LOCALES))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    written = render(args.locales, args.out)
    print(f"{len(written)} screenshots in {args.out}")


if __name__ == "__main__":
    main()
