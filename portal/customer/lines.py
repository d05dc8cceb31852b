"""A statement's lines table, rendered once per (request, language, merchant's formats)
and kept in a bounded in-process LRU.

Statement lines never change after the request is created (the API has no way to edit
them; only their ``amount_settled`` moves, which the table does not show), so the HTML of
the table depends only on the request, the page's language, the merchant's country (the
date format), its time zone and the currency. Everything else on the page (amounts due,
payments, the pay form) is rendered on every view. Nothing invalidates an entry: the
least recently shown ones are dropped when the cache is full
(``PORTAL_STATEMENT_CACHE_SIZE`` entries; 0 turns the cache off). The cache lives in the
app (each worker process has its own), so a restart after a deploy starts empty.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from flask import current_app, g
from flask.sansio.app import App
from flask_babel import get_locale
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from sqlalchemy import bindparam, select

from portal.extensions import db
from portal.payment_requests.models import StatementLine

TEMPLATE = "customer/_lines.html"
EXTENSION = "portal.statement_lines"
# The page's own translations and formatters (portal.web.bound_helpers), passed on.
HELPERS = ("gettext", "ngettext", "format_money", "format_date")

# What the table shows of a line, as Core rows in a statement built once: twenty ORM
# objects (and their identity map entries) cost more than the table's query.
_lines_table = StatementLine.__table__
_LINES = (
    select(*(_lines_table.c[name] for name in ("date", "description", "reference", "amount")))
    .where(_lines_table.c.request_id == bindparam("request_id"))
    .order_by(_lines_table.c.position)
)


class RenderedLines:
    """A thread-safe LRU of rendered tables; a miss renders outside the lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Markup] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, render: Callable[[], Markup]) -> Markup:
        with self._lock:
            html = self._items.get(key)
            if html is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return html
            self.misses += 1
        html = render()
        if self.size:
            with self._lock:
                self._items[key] = html
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return html


def init_app(app: App) -> None:
    app.extensions[EXTENSION] = RenderedLines(app.config.get("PORTAL_STATEMENT_CACHE_SIZE", 256))
    app.jinja_env.globals["statement_lines_table"] = statement_lines_table


@pass_context
def statement_lines_table(context: Context, pr: Any) -> Markup:
    """The ``<table>`` (and its "show the other lines" part) of a statement's lines,
    rendered with the calling page's bound translations and formatters."""
    key = (pr.id, str(get_locale()), g.get("merchant_country"), g.get("time_zone"), pr.currency)
    cache: RenderedLines = current_app.extensions[EXTENSION]

    def render() -> Markup:
        rows = db.session.execute(_LINES, {"request_id": pr.id}).all()
        template = current_app.jinja_env.get_template(TEMPLATE)
        helpers = {name: context[name] for name in HELPERS if name in context}
        # The output of an autoescaping template: already escaped.
        return Markup(template.render(lines=rows, pr=pr, **helpers))  # noqa: S704

    return cache.get(key, render)
