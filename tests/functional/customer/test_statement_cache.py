"""The statement's lines table is rendered once per (request, language, merchant formats)
and kept (portal/customer/lines.py): the page is the same with and without the cache, the
kept table is never shown for another request, language or merchant format, and a view
that finds it does not load the lines."""

from __future__ import annotations

import re

import pytest
from markupsafe import Markup
from sqlalchemy import event

from portal.customer.lines import EXTENSION, RenderedLines
from portal.extensions import db
from portal.links import link_token
from tests.conftest import app_in_context, make_app
from tests.factories import make_merchant, make_request, statement_body

NONCE = re.compile(r"nonce-[^'\"]+|nonce=\"[^\"]+\"|value=\"[^\"]+\"")


def _body(**overrides):
    body = statement_body(**overrides)
    body["statement"]["lines"] = [
        {"date": f"2026-10-{day:02d}", "description": f"Line {day} <b>", "amount": 1000 + day,
         "reference": f"R{day}"}
        for day in range(1, 16)
    ] + [{"description": "Credit", "amount": -200}]  # fmt: skip
    body["amount"] = sum(ln["amount"] for ln in body["statement"]["lines"])
    body["statement"]["balance"] = body["amount"]
    return body


def _page(client, pr, lang):
    resp = client.get(f"/p/{link_token(pr.id)}?lang={lang}")
    assert resp.status_code == 200
    return NONCE.sub("", resp.text)  # the CSP nonce and the form token change every view


@pytest.fixture
def uncached(database_url):
    yield from app_in_context(make_app(database_url, statement_cache_size=0), database_url)


@pytest.mark.parametrize("lang", ["en", "fr", "nl", "de"])
def test_the_page_is_the_same_with_and_without_the_cache(app, client, merchant, lang):
    pr = make_request(merchant, _body())
    first = _page(client, pr, lang)  # renders the table and keeps it
    kept = _page(client, pr, lang)  # the kept table
    cache = app.extensions[EXTENSION]
    assert cache.hits >= 1 and len(cache) == 1
    assert kept == first
    assert "Line 1 &lt;b&gt;" in kept and "<b>" not in kept.split("<main", 1)[1]
    assert kept.count('class="credit"') == 1
    # the same page from an app that renders the lines on every view
    cache.size, cache._items = 0, type(cache._items)()
    assert _page(client, pr, lang) == kept


def test_an_app_without_the_cache_keeps_nothing(uncached, merchant):
    client = uncached.test_client()
    pr = make_request(merchant, _body())
    assert _page(client, pr, "en") == _page(client, pr, "en")
    assert len(uncached.extensions[EXTENSION]) == 0


def test_a_kept_table_does_not_load_the_lines_again(app, client, merchant):
    pr = make_request(merchant, _body())
    _page(client, pr, "en")
    statements: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        _page(client, pr, "en")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert not any("statement_lines" in s for s in statements)
    # and the request itself is loaded once, not by every hook
    assert sum("FROM payment_requests" in s for s in statements) == 1


def test_each_language_request_and_merchant_format_has_its_own_table(app, client, merchant):
    pr = make_request(merchant, _body())
    other = make_request(merchant, _body(reference="STMT-2"))
    us = make_merchant(name="US shop", country="US")
    american = make_request(us, _body(reference="STMT-3"))
    english = _page(client, pr, "en")
    french = _page(client, pr, "fr")
    assert "Activity" in english and "Opérations" in french and "Activity" not in french
    assert "R15" in _page(client, other, "en")
    # A US merchant's dates (10/1/26) are not a Belgian one's (1/10/26), same language.
    assert "10/1/26" in _page(client, american, "en")
    assert "10/1/26" not in english
    assert len(app.extensions[EXTENSION]) == 4


def test_the_lru_keeps_the_most_recently_shown_tables():
    cache = RenderedLines(2)
    renders: list[str] = []

    def render(name):
        def go():
            renders.append(name)
            return Markup(name)

        return go

    assert cache.get("a", render("a")) == "a"
    assert cache.get("b", render("b")) == "b"
    assert cache.get("a", render("a")) == "a"  # kept, and now the most recent
    assert cache.get("c", render("c")) == "c"  # drops b, the least recently shown
    assert cache.get("a", render("a")) == "a"
    assert cache.get("b", render("b")) == "b"
    assert renders == ["a", "b", "c", "b"] and len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 4)
    assert cache.get("empty", lambda: Markup("")) == ""  # a request without lines


def test_the_bound_helpers_give_what_the_globals_give(app):
    from datetime import date

    from flask import g, render_template_string
    from flask_babel import refresh

    from portal.web import bound_helpers

    source = (
        "{{ ngettext('%(num)s line', '%(num)s lines', 1) }}|{{ ngettext('%(num)s line', "
        "'%(num)s lines', 3) }}|{{ _('Amount due') }}|{{ format_date(None) }}|"
        "{{ format_date(day, 'short') }}|{{ format_money(12500, 'EUR') }}|{{ get_locale() }}"
    )
    with app.test_request_context("/"):
        g.locale, g.merchant_country, g.time_zone = "fr", "BE", "Europe/Brussels"
        refresh()
        plain = render_template_string(source, day=date(2026, 10, 3))
        bound = render_template_string(source, day=date(2026, 10, 3), **bound_helpers())
    assert bound == plain
    assert bound.startswith("1 line|3 lines|Montant dû||3/10/26|125,00")
    assert bound.endswith("|fr")
