"""PDF documents for the customer: the statement (or order, or top-up) and the receipt.

WeasyPrint draws them from HTML templates (``templates/pdf/``) in the customer's
language, dates on the merchant's clock, with the merchant's logo and legal details.
It needs Pango and a font from the system (``libpango-1.0-0``, ``libpangoft2-1.0-0``;
``.ci/run`` installs them). Nothing is fetched from the network while drawing: the
logo is drawn when it is a ``data:`` URL or one of the portal's own static files; a
remote logo is left out (a web request never makes an outbound call, and a merchant's
URL must not make the portal fetch an internal address), the shop's name stands there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from flask import g, render_template
from flask_babel import force_locale

from portal.config import ROOT

STATIC = (ROOT / "static").resolve()
STYLESHEET = STATIC / "css" / "pdf.css"


class RemoteFetchRefused(ValueError):
    """A document tried to load something from outside the portal."""


# WeasyPrint is imported where a PDF is drawn, not with the portal: its import (and the
# user-agent stylesheets it parses then) was about a third of a web worker's start-up time
# and memory, in every process, for documents few of them ever draw.
@cache
def _fetcher_class() -> type:
    from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

    class LocalFetcher(URLFetcher):
        """``data:`` URLs and files under ``static/``; nothing else, never the network."""

        def __init__(self) -> None:
            super().__init__(allowed_protocols=("data", "file"), allow_redirects=False)

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("file://"):
                path = Path(url[len("file://") :].split("?")[0]).resolve()
                if not path.is_relative_to(STATIC):
                    raise RemoteFetchRefused(f"not fetched while drawing a PDF: {url[:80]}")
            elif not url.startswith("data:"):
                raise RemoteFetchRefused(f"not fetched while drawing a PDF: {url[:80]}")
            return super().fetch(url, headers)

    return LocalFetcher


def local_fetcher() -> Any:
    """WeasyPrint's fetcher for a document: local files under ``static/`` and data URLs."""
    return _fetcher_class()()


def drawable_logo(logo_url: str | None) -> str | None:
    """The logo as a document may load it, or None (a remote one is left out)."""
    if not logo_url:
        return None
    if logo_url.startswith("data:image/"):
        return logo_url
    if logo_url.startswith("/static/"):
        path = (ROOT / logo_url.lstrip("/")).resolve()
        return path.as_uri() if path.is_relative_to(STATIC) and path.is_file() else None
    return None


@contextmanager
def merchant_clock(merchant: Any) -> Iterator[None]:
    """Dates and times of the templates rendered inside, the merchant's way (see
    :mod:`portal.dates`), also in a job where no page set them."""
    saved = {name: g.get(name) for name in ("merchant_country", "time_zone")}
    g.merchant_country, g.time_zone = merchant.country, merchant.time_zone
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(g, name, value)


def render_pdf(
    template: str, locale: str, merchant: Any, *, stylesheet: Path | None = STYLESHEET,
    **context: Any,
) -> bytes:  # fmt: skip
    """``templates/pdf/<template>`` drawn as a PDF, in ``locale`` (with the documents'
    stylesheet, unless the template brings its own page)."""
    with force_locale(locale), merchant_clock(merchant):
        html = render_template(
            template, merchant=merchant, logo=drawable_logo(merchant.logo_url), **context
        )
    from weasyprint import CSS, HTML  # type: ignore[import-untyped]

    document = HTML(string=html, base_url=STATIC.as_uri() + "/", url_fetcher=local_fetcher())
    sheets = [CSS(filename=str(stylesheet))] if stylesheet else []
    return document.write_pdf(stylesheets=sheets) or b""


def statement_pdf(pr: Any, locale: str, payments: list[Any]) -> bytes:
    """What the request asks (statement lines, order, top-up), what was paid, what is due."""
    return render_pdf(
        "pdf/statement.html", locale, pr.merchant, pr=pr, payments=payments, today=date.today()
    )


def pdf_name(prefix: str, reference: str | None) -> str:
    """``receipt-R-000042.pdf``: a file name made of safe characters only."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", reference or "").strip("-.")[:60]
    return f"{prefix}-{safe}.pdf" if safe else f"{prefix}.pdf"


def receipt_pdf(payment: Any, locale: str) -> bytes:
    pr = payment.request
    return render_pdf("pdf/receipt.html", locale, pr.merchant, pr=pr, payment=payment)


# The printable QR card of a reusable top-up link: (width, height) in millimetres.
CARD_SIZES = {"a6": (105.0, 148.0), "card": (85.6, 54.0)}


def card_pdf(pr: Any, locale: str, size: str, url: str) -> bytes:
    """A card to print for a link (a reusable top-up's, on a counter or a loyalty card):
    the shop's name and logo, the link's QR code and a call to action, in ``locale``."""
    import segno  # not held by every web worker: cards are rare

    width, height = CARD_SIZES[size]
    qr = segno.make(url, error="m").svg_data_uri(scale=4, border=2)
    return render_pdf(
        "pdf/card.html", locale, pr.merchant, stylesheet=None, pr=pr, qr=qr, size=size,
        width=width, height=height,
    )  # fmt: skip


def group_receipt_pdf(group: Any, paid_lines: dict[str, list[Any]], locale: str) -> bytes:
    """The receipt of an account-page payment: each request, its share and its lines."""
    merchant = group.members[0].request.merchant
    return render_pdf(
        "pdf/group_receipt.html", locale, merchant, group=group, members=group.members,
        paid_lines=paid_lines,
    )  # fmt: skip
