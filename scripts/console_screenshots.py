"""Render the merchant console's pages at phone width (390 px) into
docs/screenshots/merchant/<page>.png, for docs/merchant-console.md (regenerated, not
hand-made).

    .venv/bin/python scripts/console_screenshots.py
    .venv/bin/python scripts/console_screenshots.py --locale fr --out /tmp/console

Needs the test extra (Playwright) and Chromium (``PORTAL_TEST_CHROMIUM`` or ``chromium``
on PATH). The portal runs on a throw-away SQLite file with the sandbox provider: a shop,
its owner (password and TOTP), a statement paid in part and one sent by e-mail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from portal.extensions import db  # noqa: E402
from portal.merchant_console.models import MerchantUser  # noqa: E402
from portal.payments.services import fulfil_payment, start_payment  # noqa: E402
from tests.conftest import make_app  # noqa: E402
from tests.factories import make_merchant, make_request, statement_body  # noqa: E402
from tests.functional.merchant_console.helpers import (  # noqa: E402
    PASSWORD,
    console_user,
    fresh_code,
)
from tests.servers import serve_wsgi  # noqa: E402

PHONE = {"width": 390, "height": 844}
PAGES = (
    ("home", "/merchant/"),
    ("new-statement", "/merchant/requests/new?kind=statement"),
    ("requests", "/merchant/requests"),
    ("request", "/merchant/requests/{request_id}"),
    ("preview", "/merchant/requests/{request_id}/preview"),
    ("payments", "/merchant/payments"),
    ("export", "/merchant/reconciliation"),
    ("settings", "/merchant/settings"),
    ("users", "/merchant/users"),
    ("audit", "/merchant/audit"),
)


def _chromium() -> str:
    path = os.environ.get("PORTAL_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        sys.exit("Chromium is needed: apt-get install chromium, or set PORTAL_TEST_CHROMIUM")
    return path


def _shop(app) -> tuple[str, str, str]:
    """The shop, its owner's e-mail and a statement paid in part: (owner id, email, request id)."""
    with app.app_context():
        db.create_all()
        shop = make_merchant(name="Boulangerie Lenoir")
        owner = console_user(shop.merchant, "owner@lenoir.example")
        pr = make_request(shop, statement_body(allow_partial=True))
        make_request(shop, statement_body(reference="STMT-2"))
        payment = start_payment(pr, 5000)
        fulfil_payment(payment.id)
        db.session.commit()
        return owner.id, owner.email, pr.id


def render(locale: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(f"sqlite:///{Path(tmp) / 'console.db'}")
        owner_id, email, request_id = _shop(app)
        with serve_wsgi(app) as base, sync_playwright() as pw:
            app.config["PORTAL_BASE_URL"] = base  # links and QR codes point at this server
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            page = browser.new_context(viewport=PHONE, locale=locale).new_page()
            page.goto(f"{base}/merchant/login")
            page.fill("#email", email)
            page.fill("#password", PASSWORD)
            with app.app_context():
                page.fill("#code", fresh_code(db.session.get(MerchantUser, owner_id)))
            page.locator("form button[type=submit]").last.click()
            page.wait_for_load_state()
            for name, path in PAGES:
                page.goto(base + path.format(request_id=request_id))
                target = out / f"{name}.png"
                page.screenshot(path=str(target), full_page=True)
                written.append(target)
            browser.close()
        with app.app_context():
            db.engine.dispose()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locale", default="en")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "merchant")
    args = parser.parse_args()
    written = render(args.locale, args.out)
    print(f"{len(written)} screenshots in {args.out}")


if __name__ == "__main__":
    main()
