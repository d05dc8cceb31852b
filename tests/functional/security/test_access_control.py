"""The access-control sweep (issue 9): every route of the URL map, from the wrong side.

Merchant A owns one of everything (requests, payments, a refund, events, callback and
link deliveries, an audit entry); merchant B, its API key and console agents scoped to
B try every route on A's objects and must get a 404 that changes nothing. Routes are
enumerated from ``app.url_map``: a route added later fails here, with the reason, until
someone decides how it is protected (a case in the tables below, or an entry in
``OTHER_AUTH`` naming the proof it uses instead of an API key, a staff session or a
link token).

"Nothing changed" is checked on the database itself: every row that belongs to
merchant A (found by following ids from A's merchant id through every table) before
and after, or every row of every table where nothing at all may change.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import Rule

from portal.delivery import shortlinks
from portal.delivery.models import LinkDelivery
from portal.extensions import db
from portal.ledger.models import CallbackDelivery, CallbackEndpoint, Event
from portal.links import account_token, form_token, link_token, request_id_from_token
from portal.merchant_console.models import MerchantUser
from portal.merchants.models import ApiKey
from portal.merchants.services import create_api_key, hash_key, revoke_api_key
from portal.payment_requests.models import PaymentRequest
from portal.payments.groups import Selection, start_group
from portal.payments.models import Payment
from portal.payments.refunds import refund_payment
from portal.payments.services import fulfil_payment, prepare_payment, start_payment
from portal.states import RequestStatus
from portal.support import actions as support
from portal.support.models import StaffUser
from tests.factories import (
    MerchantWithKey,
    deposit_body,
    make_merchant,
    make_request,
    statement_body,
)
from tests.functional.merchant_console.helpers import console_user, sign_in
from tests.functional.support.test_console import PASSWORD, https_client, login, staff, token

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Routes that use another proof than an API key, a staff session or a link token.
# Each one present in the URL map is also checked below (test_allow_listed_routes_...).
OTHER_AUTH: dict[str, str] = {
    "/webhooks/<provider>": "the provider's own signature (Stripe-Signature: an HMAC of the "
    "raw body with the signing secret); 404 for a provider without webhooks",
    "/csp-report": "browsers' CSP violation reports: no state change besides a log line",
    "/healthz": "liveness probe: a constant answer, no data",
    "/readyz": "readiness probe: check names and outcomes, no merchant data",
    "/metrics": "bearer PORTAL_METRICS_TOKEN (404 without it in production)",
    "/static/<path:filename>": "public assets (CSS, JavaScript)",
    "/api/v1/openapi.json": "the public description of the API, the same for every caller",
    "/docs/api": "the API reference: a page rendering /api/v1/openapi.json, no data",
    "/.well-known/apple-developer-merchantid-domain-association": "Apple Pay's public "
    "domain association file from configuration, the same for every caller (404 unset)",
    "/u/<token>": "the signed unsubscribe link of a reminder (its own salt; a merchant, a "
    "channel and an address hash): the token is the capability, and it only stops reminders",
    **{
        f"/a/<token>{tail}": "the signed account link (a merchant id and a customer reference, "
        "its own salt): the token is the capability; a group of another account is a 404, "
        "ids of another customer's requests are refused, forms need the link's form token"
        for tail in (
            "",
            "/pay",
            "/checkout/<group_id>",
            "/checkout/<group_id>/<step>",
            "/return/<group_id>",
            "/receipt/<group_id>",
            "/receipt/<group_id>.pdf",
        )
    },
}
# API routes whose path names one of the caller's own customer references, not an object
# id: another merchant's reference names the caller's own (empty) customer, never A's.
API_BY_REFERENCE: dict[str, str] = {
    "/api/v1/customers/<reference>/link": "the account link of the caller's own customer",
}
REFERENCE_VALUES = {"reference": "CUST-ALPHA"}
# Routes that exist only with PORTAL_ENV=development (portal/devtools): read-only pages
# for the developer at the keyboard, answering loopback clients only (a 404 to anyone
# else), absent from the URL map of every other environment. See the test below.
DEV_ONLY: dict[str, str] = {
    "/": "the start page: demo links, the demo key, test cards, how to reach the rest",
    "/dev/mail": "the mail viewer: the messages of the file:// mail folder",
    "/dev/mail/<name>": "one message: its headers, links and text part",
    "/dev/mail/<name>/html": "its HTML part, for a sandboxed frame (a policy of its own)",
    "/dev/sms": "the console SMS log",
}

# An API or console path argument -> the kinds of merchant A's objects to put there.
# Kinds no route uses today are here so that a route added with them is swept at once.
API_OBJECTS: dict[str, tuple[str, ...]] = {
    "request_id": ("open", "paid", "pending_request"),
    "payment_id": ("payment", "pending_payment"),
    "refund_id": ("refund",),
    "event_id": ("event",),
    "delivery_id": ("callback_delivery", "link_delivery"),
    "endpoint_id": ("endpoint",),
}
CONSOLE_OBJECTS: dict[str, tuple[str, ...]] = {
    **API_OBJECTS,
    # ``action`` is swept over every console action, see ACTION_CASES.
}
# A valid body per API route, so that a 404 comes from the scope and not from validation
# (merchant A's own call with the same body is the control). Object routes default to {}.
API_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/payment-requests/<request_id>/send"): {"channel": "email"},
    ("POST", "/api/v1/payments/<payment_id>/refunds"): {"amount": 100, "reason": "sweep"},
}
# API routes without an object id that change state: B's body, aimed at A's data.
API_NO_ID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/payment-requests"): statement_body(
        reference="BRAVO-NEW",
        customer={"name": "Bob Bravo", "email": "bob@example.com", "reference": "CUST-BRAVO"},
    ),
    ("POST", "/api/v1/payment-requests/void"): {"customer_reference": "CUST-ALPHA"},
    ("PATCH", "/api/v1/merchant"): {"display_name": "Bravo renamed"},
    ("POST", "/api/v1/webhook-endpoints"): {"url": "https://127.0.0.1:9/bravo-hook"},
}
# Console action -> (the request kind it acts on, the kind of its ``target`` or None).
ACTION_CASES: dict[str, tuple[str, str | None]] = {
    "resend_link": ("open", "channel"),
    "resend_receipt": ("paid", "payment"),
    "redeliver_callback": ("paid", "event"),
    "void": ("open", None),
    "refund": ("paid", "payment"),
}
# Console routes without an object: they act on the agent's own session only.
CONSOLE_OWN: dict[str, str] = {
    "/support/login": "where staff prove who they are (password, TOTP, lockout, rate limit)",
    "/support/logout": "ends the agent's own session",
    "/support/language": "the agent's own language cookie",
}
# Merchant console routes without an object of the merchant's: the open pages, and the
# user's own session. Each is also checked below (test_merchant_console_open_pages_...).
MERCHANT_OWN: dict[str, str] = {
    "/merchant/login": "where merchant users prove who they are (password, TOTP once per "
    "code, lockout, rate limits)",
    "/merchant/logout": "ends the user's own session",
    "/merchant/language": "the user's own language cookie",
    "/merchant/reset": "asks for a reset link for an address: the same answer for any address, "
    "the link goes to that address only",
    "/merchant/invitations/<token>": "the signed invitation (its own salt, bound to the "
    "account's state, 7 days): the token is the capability",
    "/merchant/logos/<digest>.png": "public logos, named by the SHA-256 of their bytes: what "
    "customers' pages and e-mails show anyway",
    "/merchant/reset/<token>": "the signed reset link (its own salt, bound to the password "
    "hash, one hour; the TOTP code too): the token is the capability",
}
# Merchant console forms without an object that change state: B's form, aimed at nothing
# of A's (the new rows are B's own; see test_merchant_console_forms_without_an_id_...).
MERCHANT_NO_ID_FORMS: dict[str, dict[str, Any]] = {
    "/merchant/users": {"email": "bravo-new@shop.test", "role": "staff", "refund_limit": "5"},
    "/merchant/requests": {
        "kind": "statement",
        "reference": "BRAVO-BY-HAND",
        "customer_reference": "CUST-BRAVO",
        "customer_name": "Bob Bravo",
        "amount": "12,50",
    },
    "/merchant/customers/void": {"customer_reference": "CUST-ALPHA", "reason": "sweep"},
    "/merchant/settings": {
        "display_name": "Bravo renamed",
        "default_locale": "nl",
        "accent_color": "#1f5f8b",
        "country": "NL",
        "time_zone": "Europe/Amsterdam",
    },
    "/merchant/keys": {"label": "bravo till"},
    "/merchant/settings/logo": {},  # no file: refused, and nothing of A's changes
    "/merchant/endpoints": {"url": "https://127.0.0.1:9/bravo-hook"},
    "/merchant/connect": {},  # B's own account at the provider (the sandbox stores nothing)
}
# A merchant console path argument -> the kinds of merchant A's objects to put there.
MERCHANT_OBJECTS: dict[str, tuple[str, ...]] = {
    **API_OBJECTS,
    "user_id": ("merchant_user", "merchant_owner"),
    "key_id": ("api_key",),
}
# Link path arguments besides the token (the token itself is the capability).
LINK_OBJECTS: dict[str, tuple[str, ...]] = {
    "payment_id": ("payment", "pending_payment"),
    "step": ("step",),  # a checkout step of the provider's (the sandbox's 3-D Secure)
}

ALPHA_CUSTOMER = {
    "name": "Ann Alpha",
    "email": "ann.alpha@example.com",
    "phone": "+32 470 99 88 77",
    "locale": "en",
    "reference": "CUST-ALPHA",
}
# What of merchant A must never reach B (besides every id of A's rows).
ALPHA_TEXTS = (
    "Shop Alpha",
    "Ann Alpha",
    "ann.alpha@example.com",
    "+32470998877",
    "ALPHA-",
    "CUST-ALPHA",
    "pi_alpha_searchable",
    "alpha customer asked",
    "alpha-admin@portal.test",
    "alpha amount mismatch",
    "alpha-owner@shop.test",
    "alpha-clerk@shop.test",
)
SHARED_IDEMPOTENCY_KEY = "order-1001"
A_USED_KEYS = {("POST", "/api/v1/payment-requests"): SHARED_IDEMPOTENCY_KEY}  # see world()
# Columns a read may legitimately touch.
VOLATILE = {("api_keys", "last_used_at"), ("staff_sessions", "last_seen_at")}
FORM = {
    "reason": "access sweep",
    "card_number": "4242 4242 4242 4242",
    "expiry": "12/39",
    "cvc": "123",
    "decision": "approve",
    "lang": "fr",
    "next": "/support/",
}


@dataclass
class Side:
    merchant: MerchantWithKey
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    a: Side
    b: Side
    admin_a: StaffUser
    owner_a: MerchantUser
    owner_b: MerchantUser


# --- the world ----------------------------------------------------------------


def _paid(m: MerchantWithKey, body: dict[str, Any]) -> tuple[PaymentRequest, Payment]:
    pr = make_request(m, body)
    payment = start_payment(pr, None)
    fulfil_payment(payment.id)
    db.session.commit()
    return db.session.get(PaymentRequest, pr.id), db.session.get(Payment, payment.id)


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> World:
    a, b = make_merchant(name="Shop Alpha"), make_merchant(name="Shop Bravo")
    endpoint = CallbackEndpoint(merchant_id=a.id, url="https://ledger.alpha.example/hook",
                                secret="whsec_YWxwaGFzZWNyZXQ=", enabled=True,
                                event_types=[])  # fmt: skip
    db.session.add(endpoint)
    db.session.commit()
    paid, payment = _paid(a, statement_body(reference="ALPHA-PAID", customer=ALPHA_CUSTOMER))
    payment.provider_payment_id = "pi_alpha_searchable"
    refund = refund_payment(a.merchant, payment.id, 100, "partial")
    db.session.commit()
    event = db.session.scalars(
        select(Event).where(Event.merchant_id == a.id, Event.type == "payment.succeeded")
    ).one()
    deliveries = db.session.scalars(
        select(CallbackDelivery)
        .where(CallbackDelivery.merchant_id == a.id)
        .order_by(CallbackDelivery.created_at, CallbackDelivery.id)
    ).all()
    # one dead-lettered and one failing delivery: the console's dashboard lists them
    deliveries[0].status, deliveries[0].attempts, deliveries[0].last_status_code = "dead", 10, 500
    deliveries[1].attempts, deliveries[1].last_status_code = 1, 503
    db.session.commit()
    # created through the API with an Idempotency-Key that B will happen to use too
    created = client.post(
        "/api/v1/payment-requests",
        json=statement_body(reference="ALPHA-OPEN", customer=ALPHA_CUSTOMER),
        headers={**a.headers, "Idempotency-Key": SHARED_IDEMPOTENCY_KEY},
    )
    assert created.status_code == 201, created.json
    open_request = db.session.get(PaymentRequest, created.json["id"])
    pending_request = make_request(
        a, statement_body(reference="ALPHA-PENDING", customer=ALPHA_CUSTOMER)
    )
    pending = start_payment(pending_request, None)
    prepare_payment(pending)  # as the pay form does: the checkout page only reads
    pending.flagged, pending.flagged_reason = True, "alpha amount mismatch"
    db.session.commit()
    deposit = make_request(a, deposit_body(reference="ALPHA-DEPOSIT", customer=ALPHA_CUSTOMER))
    group = start_group(a.merchant, "CUST-ALPHA", Selection(requests=frozenset({deposit.id})))
    db.session.commit()
    admin_a = staff("admin", merchants=[a.id], email="alpha-admin@portal.test")
    support.perform(admin_a, open_request, "resend_link", "alpha customer asked", "email")
    link_delivery = db.session.scalars(
        select(LinkDelivery).where(LinkDelivery.request_id == open_request.id)
    ).one()
    owner_a = console_user(a.merchant, "alpha-owner@shop.test")
    clerk_a = console_user(a.merchant, "alpha-clerk@shop.test", "staff", refund_limit=500)
    a_side = Side(a, {
        "merchant": a.id, "open": open_request.id, "paid": paid.id,
        "pending_request": pending_request.id, "payment": payment.id,
        "pending_payment": pending.id, "refund": refund.id, "event": event.id,
        "callback_delivery": deliveries[0].id, "link_delivery": link_delivery.id,
        "endpoint": endpoint.id, "channel": "email", "step": "3ds", "group": group.id,
        "deposit": deposit.id,
        "merchant_user": clerk_a.id, "merchant_owner": owner_a.id,
        "api_key": db.session.scalars(select(ApiKey.id).where(ApiKey.merchant_id == a.id)).first(),
    })  # fmt: skip

    b_open = make_request(b, statement_body(reference="BRAVO-OPEN"))
    bravo = {"name": "Bob Bravo", "reference": "CUST-BRAVO"}
    b_deposit = make_request(b, deposit_body(reference="BRAVO-DEPOSIT", customer=bravo))
    b_paid, b_payment = _paid(b, statement_body(reference="BRAVO-PAID"))
    b_event = db.session.scalars(
        select(Event).where(Event.merchant_id == b.id, Event.type == "payment.succeeded")
    ).one()
    b_side = Side(b, {
        "merchant": b.id, "open": b_open.id, "paid": b_paid.id, "payment": b_payment.id,
        "deposit": b_deposit.id,
        "event": b_event.id, "channel": "email",
    })  # fmt: skip
    owner_b = console_user(b.merchant, "bravo-owner@shop.test")
    return World(a_side, b_side, admin_a, owner_a, owner_b)


# --- the database, before and after ------------------------------------------------


def _rows() -> dict[str, list[dict[str, Any]]]:
    db.session.expire_all()
    return {
        table.name: [
            {k: v for k, v in row.items() if (table.name, k) not in VOLATILE}
            for row in db.session.execute(select(table)).mappings()
        ]
        for table in db.metadata.sorted_tables
    }


def _canon(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def everything() -> dict[str, list[str]]:
    """Every row of every table (but for the columns a read may touch)."""
    return {name: sorted(map(_canon, rows)) for name, rows in _rows().items()}


def rows_of(merchant_id: str) -> dict[str, list[str]]:
    """Every row that belongs to the merchant: those naming its id, or the id of a row
    that does (requests, their payments, jobs about their deliveries, its staff...)."""
    tables = {name: [(row, _canon(row)) for row in rows] for name, rows in _rows().items()}
    ids, owned = {merchant_id}, {}
    while True:
        found = {
            name: sorted(text for _, text in rows if any(f'"{i}"' in text for i in ids))
            for name, rows in tables.items()
        }
        more = {
            row["id"]
            for name, rows in tables.items()
            for row, text in rows
            if text in found[name] and isinstance(row.get("id"), str)
        }
        if found == owned and more <= ids:
            return owned
        owned, ids = found, ids | more


def diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> str:
    lines = []
    for name in sorted(set(before) | set(after)):
        old, new = set(before.get(name, [])), set(after.get(name, []))
        lines += [f"{name} - {row}" for row in sorted(old - new)]
        lines += [f"{name} + {row}" for row in sorted(new - old)]
    return "\n".join(lines[:20])


def ids_of(merchant_id: str) -> set[str]:
    """The ids of every row that belongs to the merchant."""
    ids = set()
    for rows in rows_of(merchant_id).values():
        for text in rows:
            row = json.loads(text)
            if isinstance(row.get("id"), str) and len(row["id"]) >= 8:
                ids.add(row["id"])
    return ids


def markers(world: World) -> set[str]:
    """Everything that would show merchant A: the ids of its rows and its words."""
    return ids_of(world.a.merchant.id) | set(ALPHA_TEXTS)


def leaked(text: str, world_markers: Iterable[str]) -> list[str]:
    return sorted(m for m in world_markers if m in text)


# --- the URL map --------------------------------------------------------------------


def rules(app: Flask, prefix: str = "") -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.rule.startswith(prefix)),
        key=lambda r: (r.rule, r.endpoint),
    )


def methods(rule: Rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def fill(rule: Rule, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", one, rule.rule)


def combinations(
    arguments: Iterable[str], objects: dict[str, tuple[str, ...]], side: Side
) -> list[dict[str, str]]:
    """Every choice of ``side``'s objects for the path arguments."""
    names = sorted(arguments)
    choices = [[side.ids[kind] for kind in objects[name]] for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def area(rule: Rule) -> str:
    """Which sweep covers the rule: 'api', 'console', 'link' or 'other' (allow-listed)."""
    if rule.rule in OTHER_AUTH:
        return "other"
    if rule.rule in API_BY_REFERENCE:
        return "api-reference"
    if rule.rule.startswith("/api/"):
        return "api"
    if rule.endpoint.startswith("support."):
        return "console"
    if rule.endpoint.startswith("merchant_console."):
        return "merchant"
    if rule.rule.startswith(("/p/<token>", "/s/<code>")):
        return "link"
    return "unknown"


def test_every_route_is_covered_or_allow_listed(app: Flask) -> None:
    problems = []
    for rule in rules(app):
        where, args = area(rule), set(rule.arguments)
        route = f"{'/'.join(methods(rule))} {rule.rule} ({rule.endpoint})"
        if where == "unknown":
            problems.append(
                f"{route} is neither swept nor allow-listed: give it a case in one of the "
                "sweeps, or add it to OTHER_AUTH with the proof it uses instead"
            )
        elif where == "api" and args - set(API_OBJECTS):
            problems.append(f"{route}: no kind of object in API_OBJECTS for {args}")
        elif where == "api" and not args:
            problems += [
                f"{route}: changes state without an id; add B's body to API_NO_ID_BODIES"
                for m in methods(rule)
                if m in STATE_CHANGING and (m, rule.rule) not in API_NO_ID_BODIES
            ]
        elif where == "console" and args - set(CONSOLE_OBJECTS) - {"action"}:
            problems.append(f"{route}: no kind of object in CONSOLE_OBJECTS for {args}")
        elif where == "console" and not args and set(methods(rule)) & STATE_CHANGING:
            if rule.rule not in CONSOLE_OWN:
                problems.append(f"{route}: changes state without an object; add to CONSOLE_OWN")
        elif where == "merchant" and rule.rule not in {**MERCHANT_OWN, **MERCHANT_NO_ID_FORMS}:
            if args - set(MERCHANT_OBJECTS):
                problems.append(f"{route}: no kind of object in MERCHANT_OBJECTS for {args}")
            elif not args and set(methods(rule)) & STATE_CHANGING:
                problems.append(f"{route}: changes state without an object; add to MERCHANT_OWN")
        elif where == "link" and args - {"token", "code"} - set(LINK_OBJECTS):
            problems.append(f"{route}: no kind of object in LINK_OBJECTS for {args}")
    missing = set(support.ACTIONS) - set(ACTION_CASES)
    if missing:
        problems.append(f"console actions without a case in ACTION_CASES: {sorted(missing)}")
    assert not problems, "\n".join(problems)
    reasons = [*OTHER_AUTH.values(), *CONSOLE_OWN.values(), *MERCHANT_OWN.values()]
    assert all(reason.strip() for reason in reasons)


# --- 1. the API ---------------------------------------------------------------------


def test_api_object_routes_answer_404_to_another_merchant(
    app: Flask, client: FlaskClient, world: World
) -> None:
    before = everything()
    swept = []
    for rule in rules(app, "/api/"):
        if area(rule) != "api" or not rule.arguments:
            continue
        for method, values in itertools.product(
            methods(rule), combinations(rule.arguments, API_OBJECTS, world.a)
        ):
            path, body = fill(rule, values), API_BODIES.get((method, rule.rule), {})
            resp = client.open(path, method=method, json=body, headers=world.b.merchant.headers)
            assert resp.status_code == 404, (method, path, resp.status_code, resp.json)
            assert resp.json["error"]["code"] == "not_found", (method, path, resp.json)
            swept.append((method, rule.rule, path, body))
    assert everything() == before, "merchant B changed something:\n" + diff(before, everything())
    assert {(m, r) for m, r, _, _ in swept} >= {
        ("GET", "/api/v1/payment-requests/<request_id>"),
        ("POST", "/api/v1/payment-requests/<request_id>/void"),
        ("POST", "/api/v1/payment-requests/<request_id>/send"),
        ("POST", "/api/v1/payments/<payment_id>/refunds"),
        ("POST", "/api/v1/events/<event_id>/redeliver"),
    }
    # The control: A's own key reaches every one of those objects (a 409 is a state the
    # object is in, e.g. a paid request cannot be voided). Deletions last: after one, the
    # object is rightly gone.
    for method, rule_text, path, body in sorted(swept, key=lambda s: s[0] == "DELETE"):
        resp = client.open(path, method=method, json=body, headers=world.a.merchant.headers)
        assert 200 <= resp.status_code < 300 or resp.status_code == 409, (
            method, path, resp.status_code, resp.json,
        )  # fmt: skip


def test_api_routes_without_an_id_never_show_or_touch_another_merchant(
    app: Flask, client: FlaskClient, world: World
) -> None:
    a, b = world.a, world.b
    hidden = markers(world)
    before = rows_of(a.merchant.id)
    queries: list[dict[str, str]] = [
        {},
        {"limit": "100"},
        {"reference": "ALPHA-PAID"},
        {"customer_reference": "CUST-ALPHA"},
        {"type": "payment.succeeded"},
        *({"status": s.value} for s in RequestStatus),
        *({"starting_after": a.ids[kind]} for kind in ("open", "paid", "event")),
    ]
    no_id = [r for r in rules(app, "/api/") if area(r) == "api" and not r.arguments]
    assert no_id, "the API has list routes"
    # reads first: B's own writes below may then contain words B itself sent
    for rule in no_id:
        for method in (m for m in methods(rule) if m not in STATE_CHANGING):
            for query in queries:
                resp = client.open(
                    rule.rule, method=method, query_string=query, headers=b.merchant.headers
                )
                # 400: a parameter this listing does not know (``type`` on payment requests).
                assert resp.status_code in (200, 400, 422), (rule.rule, query, resp.status_code)
                assert not leaked(resp.get_data(as_text=True), hidden), (rule.rule, query)
    listed = client.get("/api/v1/payment-requests", headers=b.merchant.headers).json
    assert {pr["id"] for pr in listed["data"]} == {b.ids[k] for k in ("open", "paid", "deposit")}
    events = client.get("/api/v1/events", headers=b.merchant.headers).json
    assert b.ids["event"] in {e["id"] for e in events["data"]}
    a_ids = ids_of(a.merchant.id)
    for rule in no_id:
        for method in (m for m in methods(rule) if m in STATE_CHANGING):
            body = API_NO_ID_BODIES[(method, rule.rule)]
            headers = dict(b.merchant.headers)
            if (method, rule.rule) in A_USED_KEYS:  # keys are per merchant, never shared
                headers["Idempotency-Key"] = A_USED_KEYS[(method, rule.rule)]
            resp = client.open(rule.rule, method=method, json=body, headers=headers)
            assert 200 <= resp.status_code < 300, (rule.rule, resp.status_code, resp.json)
            assert "Idempotent-Replayed" not in resp.headers, rule.rule
            assert not leaked(resp.get_data(as_text=True), a_ids), rule.rule
    voided = client.post(
        "/api/v1/payment-requests/void",
        json={"customer_reference": "CUST-ALPHA"},
        headers=b.merchant.headers,
    ).json
    assert voided["count"] == 0 and voided["ids"] == []
    after = rows_of(a.merchant.id)
    assert after == before, "merchant B changed merchant A's data:\n" + diff(before, after)
    assert db.session.get(PaymentRequest, a.ids["open"]).status == "open"


def test_every_api_route_needs_a_key(app: Flask, client: FlaskClient, world: World) -> None:
    a = world.a.merchant
    revoked_secret = create_api_key(a.merchant, label="revoked")
    revoked = db.session.scalars(
        select(ApiKey).where(ApiKey.key_hash == hash_key(revoked_secret))
    ).one()
    revoke_api_key(revoked.id)
    db.session.commit()
    refusals = [
        {},
        {"Authorization": "Bearer sk_portal_made_up_0123456789"},
        {"Authorization": f"Bearer {revoked_secret}"},
        {"Authorization": f"Basic {a.api_key}"},
        {"Authorization": a.api_key},
        {"X-Api-Key": a.api_key},
    ]
    before = everything()
    calls = []
    for rule in rules(app, "/api/"):
        if area(rule) not in ("api", "api-reference"):
            continue
        values = {
            name: REFERENCE_VALUES.get(name) or world.a.ids[API_OBJECTS[name][0]]
            for name in rule.arguments
        }
        for method in methods(rule):
            path = fill(rule, values)
            body = API_BODIES.get((method, rule.rule)) or API_NO_ID_BODIES.get(
                (method, rule.rule), {}
            )
            for headers in refusals:
                resp = client.open(path, method=method, json=body, headers=headers)
                assert resp.status_code == 401, (method, path, headers, resp.status_code)
                assert resp.json["error"]["code"] == "unauthorized"
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            calls.append((method, path, body))
    assert everything() == before, diff(before, everything())
    assert any(m in STATE_CHANGING for m, _, _ in calls)
    for method, path, body in calls:  # the control: the right key gets past the door
        resp = client.open(path, method=method, json=body, headers=a.headers)
        assert resp.status_code != 401, (method, path)


# --- 2. the support console --------------------------------------------------------


@contextmanager
def console(app: Flask, user: StaffUser) -> Iterator[tuple[FlaskClient, str]]:
    """A console client signed in as ``user``, with its CSRF token; in an app context of
    its own, so a fresh ``g`` as every real request has (Flask-WTF caches the token there)."""
    with app.app_context():
        client = https_client(app)
        assert login(client, user).status_code == 303
        yield client, token(client, "/support/")


def action_form(side: Side, action: str, csrf: str) -> dict[str, str]:
    target = ACTION_CASES[action][1]
    return {**FORM, "csrf_token": csrf, "target": side.ids[target] if target else ""}


def console_calls(app: Flask, side: Side) -> list[tuple[str, str, str]]:
    """(method, path, action) for every console route with an object, on ``side``'s."""
    calls = []
    for rule in rules(app, "/support/"):
        if area(rule) != "console" or not rule.arguments:
            continue
        # with an action, the request is the one that action is meant for (ACTION_CASES)
        acts = "action" in rule.arguments
        names = rule.arguments - ({"action", "request_id"} if acts else set())
        for values, action in itertools.product(
            combinations(names, CONSOLE_OBJECTS, side), support.ACTIONS if acts else [""]
        ):
            if action:
                values = {**values, "action": action}
                values.setdefault("request_id", side.ids[ACTION_CASES[action][0]])
            calls += [(m, fill(rule, values), action) for m in methods(rule)]
    return calls


def send(client: FlaskClient, method: str, path: str, form: dict[str, str]) -> Any:
    """A form posted, or a page read with the action's target in its query (confirm)."""
    if method == "GET":
        return client.get(path, query_string={"target": form.get("target", "")})
    return client.open(path, method=method, data=form)


@pytest.mark.parametrize("role", ["support", "admin"])
def test_console_agents_get_404_on_another_merchants_objects(
    app: Flask, world: World, role: str
) -> None:
    agent = staff(role, merchants=[world.b.merchant.id], email=f"bravo-{role}@portal.test")
    before = rows_of(world.a.merchant.id)
    calls = console_calls(app, world.a)
    with console(app, agent) as (client, csrf):
        for method, path, action in calls:
            form = action_form(world.a, action, csrf) if action else {**FORM, "csrf_token": csrf}
            resp = send(client, method, path, form)
            assert resp.status_code == 404, (role, method, path, resp.status_code)
    after = rows_of(world.a.merchant.id)
    assert after == before, f"a {role} scoped to B changed A's data:\n" + diff(before, after)
    assert {(m, p.rsplit("/", 1)[-1]) for m, p, _ in calls if "/do/" in p} == {
        ("POST", action) for action in support.ACTIONS
    }
    assert any(p.endswith(".json") for _, p, _ in calls), "the raw event route is swept"
    # The control: A's own admin opens every page and does every action on the same ids.
    with console(app, world.admin_a) as (client, csrf):
        for method, path, action in calls:
            form = action_form(world.a, action, csrf) if action else {**FORM, "csrf_token": csrf}
            resp = send(client, method, path, form)
            assert resp.status_code in (200, 303), (method, path, resp.status_code)


def test_console_actions_refuse_another_merchants_targets(app: Flask, world: World) -> None:
    """B's own request, with A's payment or event as the action's target: refused."""
    agent = staff("admin", merchants=[world.b.merchant.id], email="bravo-admin@portal.test")
    with console(app, agent) as (client, csrf):
        before, hidden = rows_of(world.a.merchant.id), markers(world)
        crossed = []
        for action, (request_kind, target) in ACTION_CASES.items():
            if target is None or world.a.ids[target] == world.b.ids[target]:
                continue  # no object as its target (void, a channel name)
            form = action_form(world.a, action, csrf)
            path = f"/support/requests/{world.b.ids[request_kind]}/do/{action}"
            resp = client.post(path, data=form)
            assert resp.status_code == 422, (action, resp.status_code)
            assert not leaked(resp.text.replace(form["target"], ""), hidden), action
            crossed.append((path, action))
        assert rows_of(world.a.merchant.id) == before, diff(before, rows_of(world.a.merchant.id))
        assert {a for _, a in crossed} == {"resend_receipt", "redeliver_callback", "refund"}
        for path, action in crossed:  # the control: B's own target goes through
            resp = client.post(path, data=action_form(world.b, action, csrf))
            assert resp.status_code == 303, (action, resp.status_code)


def console_queries(world: World) -> list[dict[str, str]]:
    today = date.today().isoformat()
    searches = [
        *(world.a.ids[k] for k in ("open", "paid", "pending_request", "payment")),
        *(world.a.ids[k] for k in ("pending_payment", "refund", "event")),
        "pi_alpha_searchable", "ALPHA-PAID", "ALPHA-OPEN", "CUST-ALPHA", "Ann Al",
        "ann.alpha@example.com", "ANN.ALPHA@example.com", "0470 99 88 77", "+32470998877",
    ]  # fmt: skip
    return [
        {},
        *({"q": s} for s in searches),
        *({"status": s.value} for s in RequestStatus),
        {"from": today, "to": today},
        *({"target": world.a.ids[k]} for k in ("open", "paid", "payment")),
        *({"action": a} for a in support.ACTIONS),
        {"staff": world.admin_a.email},
    ]


def page_text(resp: Any, query: dict[str, str]) -> str:
    """The page without the search fields echoing what was typed."""
    text = resp.get_data(as_text=True)
    for value in query.values():
        text = text.replace(f'value="{escape(value)}"', "")
    return text


@pytest.mark.parametrize("role", ["support", "admin"])
def test_console_lists_never_show_another_merchant(app: Flask, world: World, role: str) -> None:
    agent = staff(role, merchants=[world.b.merchant.id], email=f"bravo-{role}@portal.test")
    hidden = markers(world)
    lists = [
        r.rule
        for r in rules(app, "/support/")
        if area(r) == "console" and not r.arguments and "GET" in r.methods
        and r.rule not in CONSOLE_OWN
    ]  # fmt: skip
    assert {"/support/", "/support/search", "/support/audit"} <= set(lists)
    with console(app, agent) as (client, _):
        for path, query in itertools.product(lists, console_queries(world)):
            resp = client.get(path, query_string=query)
            assert resp.status_code in (200, 403), (path, query, resp.status_code)
            assert not leaked(page_text(resp, query), hidden), (role, path, query)
    # the control: A's own admin does see A's data on each of those pages
    with console(app, world.admin_a) as (client, _):
        for path in lists:
            seen = set()
            for query in console_queries(world):
                resp = client.get(path, query_string=query)
                seen |= set(leaked(page_text(resp, query), hidden))
            assert seen, f"{path} shows nothing of A even to A's own admin: give it a case"


# --- 2b. the merchant console ----------------------------------------------------------


@contextmanager
def merchant_console(app: Flask, user: MerchantUser) -> Iterator[tuple[FlaskClient, str]]:
    """A merchant console client signed in as ``user``, with its CSRF token, in an app
    context of its own (a fresh ``g``, as every real request has)."""
    with app.app_context():
        client = https_client(app)
        assert sign_in(client, user).status_code == 303
        yield client, token(client, "/merchant/")


def merchant_calls(app: Flask, side: Side) -> list[tuple[str, str]]:
    """(method, path) for every merchant console route with an object, on ``side``'s."""
    calls = []
    for rule in rules(app, "/merchant/"):
        if area(rule) != "merchant" or not rule.arguments or rule.rule in MERCHANT_OWN:
            continue
        for values in combinations(rule.arguments, MERCHANT_OBJECTS, side):
            calls += [(m, fill(rule, values)) for m in methods(rule)]
    return calls


def test_merchant_users_get_404_on_another_merchants_objects(app: Flask, world: World) -> None:
    before = rows_of(world.a.merchant.id)
    calls = merchant_calls(app, world.a)
    assert ("POST", f"/merchant/users/{world.a.ids['merchant_user']}") in calls
    assert ("POST", f"/merchant/requests/{world.a.ids['open']}/send") in calls
    assert ("GET", f"/merchant/requests/{world.a.ids['paid']}/preview") in calls
    assert ("POST", f"/merchant/payments/{world.a.ids['payment']}/refunds") in calls
    assert ("POST", f"/merchant/requests/{world.a.ids['open']}/void") in calls
    assert ("POST", f"/merchant/endpoints/{world.a.ids['endpoint']}") in calls
    assert ("POST", f"/merchant/events/{world.a.ids['event']}/replay") in calls
    with merchant_console(app, world.owner_b) as (client, csrf):
        for method, path in calls:
            form = {**FORM, "csrf_token": csrf, "state": "disable", "channel": "email"}
            resp = client.open(path, method=method, data=form)  # fmt: skip
            assert resp.status_code == 404, (method, path, resp.status_code)
    after = rows_of(world.a.merchant.id)
    assert after == before, "B's owner changed A's data:\n" + diff(before, after)
    # The control: A's own owner reaches every one of those objects.
    with merchant_console(app, world.owner_a) as (client, csrf):
        for method, path in calls:
            form = {**FORM, "csrf_token": csrf, "channel": "email"}
            resp = client.open(path, method=method, data=form)
            # a 409 is a state the object is in (a paid request cannot be sent)
            assert resp.status_code in (200, 303, 409), (method, path, resp.status_code)


def test_merchant_console_forms_without_an_id_touch_only_their_merchant(
    app: Flask, world: World
) -> None:
    hidden = markers(world)
    before = rows_of(world.a.merchant.id)
    forms = [
        r for r in rules(app, "/merchant/")
        if r.rule in MERCHANT_NO_ID_FORMS and set(methods(r)) & STATE_CHANGING
    ]  # fmt: skip
    assert {r.rule for r in forms} == set(MERCHANT_NO_ID_FORMS)
    with merchant_console(app, world.owner_b) as (client, csrf):
        for rule in forms:
            data = {**MERCHANT_NO_ID_FORMS[rule.rule], "csrf_token": csrf}
            resp = client.post(rule.rule, data=data, follow_redirects=True)
            assert resp.status_code in (200, 422), (rule.rule, resp.status_code)
            assert not leaked(resp.get_data(as_text=True), hidden), rule.rule
    after = rows_of(world.a.merchant.id)
    assert after == before, "B's owner changed A's data:\n" + diff(before, after)
    made = db.session.scalars(
        select(PaymentRequest).where(PaymentRequest.reference == "BRAVO-BY-HAND")
    ).one()
    assert made.merchant_id == world.b.merchant.id
    invited = db.session.scalars(
        select(MerchantUser).where(MerchantUser.email == "bravo-new@shop.test")
    ).one()
    assert invited.merchant_id == world.b.merchant.id


def merchant_pages(app: Flask) -> list[str]:
    return [
        r.rule
        for r in rules(app, "/merchant/")
        if area(r) == "merchant" and not r.arguments and "GET" in r.methods
        and r.rule not in MERCHANT_OWN
    ]  # fmt: skip


def test_merchant_console_pages_never_show_another_merchant(app: Flask, world: World) -> None:
    hidden = markers(world)
    pages = merchant_pages(app)
    assert {"/merchant/", "/merchant/users", "/merchant/audit", "/merchant/requests",
            "/merchant/payments", "/merchant/settings", "/merchant/reconciliation",
            "/merchant/connect/return", "/merchant/connect/refresh"} <= set(pages)  # fmt: skip
    clerk_b = console_user(world.b.merchant.merchant, "bravo-clerk@shop.test", "staff")
    for user in (world.owner_b, clerk_b):
        with merchant_console(app, user) as (client, _):
            for path in pages:
                resp = client.get(path)
                assert resp.status_code in (200, 403), (user.role, path, resp.status_code)
                assert not leaked(resp.get_data(as_text=True), hidden), (user.role, path)
    # the control: A's own owner does see A's data on each of those pages
    with merchant_console(app, world.owner_a) as (client, _):
        for path in pages:
            assert leaked(client.get(path).get_data(as_text=True), hidden), path


def test_merchant_console_open_pages_check_their_own_proof(app: Flask, world: World) -> None:
    """Forged, foreign or wrong-purpose tokens are the same plain 404; the open forms change
    nothing of A's but a reset e-mail job for the address typed; no session crosses between
    the consoles."""
    from portal.merchant_console.accounts import account_token

    hidden = markers(world)
    clerk_a = db.session.get(MerchantUser, world.a.ids["merchant_user"])
    reset_a = account_token(clerk_a, "reset")
    forged = [link_token(world.a.ids["open"]), reset_a + "x", "x.y.z", "a" * 400]
    with merchant_console(app, world.owner_b) as (client, csrf):
        before = everything()
        for path in ("/merchant/invitations/<token>", "/merchant/reset/<token>"):
            for value in [*forged, reset_a if "invitations" in path else reset_a[::-1]]:
                for method in ("GET", "POST"):
                    resp = client.open(path.replace("<token>", value), method=method,
                                       data={**FORM, "csrf_token": csrf, "password": "x" * 20,
                                             "confirm": "x" * 20})  # fmt: skip
                    assert resp.status_code == 404, (path, method, resp.status_code)
                    shown = resp.get_data(as_text=True).replace(escape(value), "")
                    assert not leaked(shown, hidden), path
        assert everything() == before, diff(before, everything())
        # the reset form gives the same page for A's address and an unknown one
        pages = [
            client.post("/merchant/reset", data={"csrf_token": csrf, "email": email}).text
            for email in ("alpha-clerk@shop.test", "nobody-at-all@shop.test")
        ]
        assert pages[0] == pages[1] and not leaked(pages[0], hidden)
        assert client.get(f"/merchant/logos/{'0' * 64}.png").status_code == 404
        # a merchant user's session opens no support page
        assert client.get("/support/").status_code == 302
    with console(app, staff("admin", email="root-admin@portal.test")) as (client, _):
        assert client.get("/merchant/").status_code == 302  # nor a staff session the console


# --- the customer's links ------------------------------------------------------------


def test_a_link_never_reaches_another_links_payments(app: Flask, world: World) -> None:
    client = https_client(app)
    csrf = token(client, f"/p/{link_token(world.b.ids['open'])}")
    b_token = link_token(world.b.ids["open"])
    before = rows_of(world.a.merchant.id)
    swept = []
    for rule in rules(app, "/p/"):
        if area(rule) != "link" or rule.arguments == {"token"}:
            continue
        for values in combinations(rule.arguments - {"token"}, LINK_OBJECTS, world.a):
            path = fill(rule, {**values, "token": b_token})
            for method in methods(rule):
                resp = client.open(path, method=method, data={**FORM, "csrf_token": csrf})
                assert resp.status_code == 404, (method, path, resp.status_code)
                swept.append((method, rule.rule))
    after = rows_of(world.a.merchant.id)
    assert after == before, diff(before, after)
    assert ("POST", "/p/<token>/checkout/<payment_id>") in swept
    assert ("GET", "/p/<token>/receipt/<payment_id>") in swept


def test_a_short_link_opens_its_own_request_only(app: Flask, world: World) -> None:
    """``/s/<code>``: the code of B's request leads to B's page; a code changed by one
    character, of another key, unknown or not of the alphabet is a 404; nothing changes
    but the short link rows made here; other methods are refused."""
    client = https_client(app)
    b_code = shortlinks.short_code(world.b.ids["open"])
    db.session.commit()
    before = rows_of(world.a.merchant.id)
    opened = client.get(f"/s/{b_code}")
    assert opened.status_code == 303
    assert opened.headers["Location"] == f"/p/{link_token(world.b.ids['open'])}"
    flipped = b_code[:-1] + ("a" if b_code[-1] != "a" else "b")
    for code in (flipped, shortlinks.new_code(), "0" * 16, b_code + "\u200b", b_code[:15]):
        assert client.get(f"/s/{code}").status_code == 404, code
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.open(f"/s/{b_code}", method=method).status_code == 405
    assert rows_of(world.a.merchant.id) == before


# --- 3. methods, CSRF tokens and the allow-list -----------------------------------


def every_value(world: World) -> dict[str, str]:
    """One concrete value for every path argument the portal has."""
    ids = world.a.ids
    return {
        "token": link_token(ids["pending_request"]),
        "code": "0" * 16,  # the short link's code: of the right form, of no request
        "payment_id": ids["pending_payment"],
        "group_id": ids["group"],
        "reference": "CUST-ALPHA",
        "request_id": ids["open"],
        "event_id": ids["event"],
        "refund_id": ids["refund"],
        "delivery_id": ids["callback_delivery"],
        "endpoint_id": ids["endpoint"],
        "user_id": ids["merchant_user"],
        "key_id": ids["api_key"],
        "digest": "0" * 64,
        "action": "void",
        "step": "3ds",
        "provider": "stripe",
        "filename": "css/portal.css",
    }


def concrete(rule: Rule, world: World) -> str:
    values = every_value(world)
    unknown = set(rule.arguments) - set(values)
    assert not unknown, f"{rule.rule}: no value for {unknown} in every_value()"
    return fill(rule, values)


def test_state_changing_routes_refuse_get(app: Flask, world: World) -> None:
    """POST-only routes answer GET with 405; where the path also has a read view (another
    rule, or GET on the same rule), that GET changes nothing."""
    with console(app, staff("admin", email="root-admin@portal.test")) as (client, _):
        headers = world.a.merchant.headers
        adapter = app.url_map.bind("portal.test", url_scheme="https")
        read_views, refused = {}, []
        for rule in rules(app):
            if not set(methods(rule)) & STATE_CHANGING:
                continue
            path = concrete(rule, world)
            try:
                endpoint, _ = adapter.match(path, method="GET")
            except MethodNotAllowed:
                endpoint = None
            before = everything()
            resp = client.get(path, headers=headers)
            if endpoint is None:
                assert resp.status_code == 405, (rule.rule, resp.status_code)
                # (the portal's error pages drop the 405's Allow header for now; when they
                # keep it, it must not offer GET)
                assert "GET" not in resp.headers.get("Allow", ""), rule.rule
                if rule.rule.startswith("/api/"):
                    assert resp.json["error"]["code"] == "method_not_allowed"
                refused.append(rule.rule)
            else:
                assert resp.status_code < 500, (rule.rule, endpoint, resp.status_code)
                read_views[rule.rule] = endpoint
            after = everything()
            assert after == before, f"GET {path} changed state:\n" + diff(before, after)
        assert (
            read_views.items()
            >= {
                "/api/v1/payment-requests": "api.list_payment_requests",
                "/api/v1/payment-requests/void": "api.get_payment_request",  # the request "void"
                "/p/<token>/checkout/<payment_id>": "customer.checkout",
                "/p/<token>/checkout/<payment_id>/<step>": "customer.checkout",
                "/support/login": "support.login",
            }.items()
        )
        assert {"/support/requests/<request_id>/do/<action>", "/support/logout"} <= set(refused)
        assert db.session.get(Payment, world.a.ids["pending_payment"]).status == "pending"


def _link_form_token(path: str) -> str:
    """The form token of the link in ``/p/<token>/…`` (docs/embedding.md)."""
    return form_token(request_id_from_token(path.split("/")[2]) or "")


def test_state_changing_forms_need_a_csrf_token(app: Flask, world: World) -> None:
    app.config["WTF_CSRF_ENABLED"] = True  # as tests/conftest.py sets it; never assumed
    admin = staff("admin", email="root-admin@portal.test")
    with console(app, admin) as (client, csrf):
        form = {**FORM, "email": admin.email, "password": PASSWORD}
        forms = []
        for rule in rules(app):
            if area(rule) in ("api", "api-reference", "other"):
                continue
            if not set(methods(rule)) & STATE_CHANGING:
                continue
            forms += [(m, concrete(rule, world)) for m in methods(rule) if m in STATE_CHANGING]
        # logout last: the controls below need the session until then
        forms.sort(key=lambda call: call[1] == "/support/logout")
        assert {p for _, p in forms} >= {"/support/logout", "/support/language", "/support/login"}
        for method, path in forms:
            forgeries = [{}, {"csrf_token": "forged"}, {"csrf_token": csrf + "x"}]
            if path.startswith("/p/"):  # a customer form takes its link's token only
                forgeries += [{"csrf_token": csrf}, {"csrf_token": _link_form_token(path) + "x"}]
            for forged in forgeries:
                before = everything()
                code = pyotp.TOTP(admin.totp_secret).now()
                resp = client.open(path, method=method, data={**form, "code": code, **forged})
                assert resp.status_code == 400, (method, path, forged, resp.status_code)
                after = everything()
                assert after == before, f"{method} {path} without CSRF:\n" + diff(before, after)
        for method, path in forms:  # the control: with the token each form gets past the check
            code = pyotp.TOTP(admin.totp_secret).now()
            token = _link_form_token(path) if path.startswith("/p/") else csrf
            data = {**form, "code": code, "csrf_token": token}
            resp = client.open(path, method=method, data=data)
            assert resp.status_code not in (400, 500), (method, path, resp.status_code)


def test_allow_listed_routes_check_their_own_proof(app: Flask, world: World) -> None:
    client = app.test_client()
    present = {r.rule for r in rules(app)} & set(OTHER_AUTH)
    hidden = markers(world)
    before = everything()
    checked = set()
    if "/webhooks/<provider>" in present:
        forged = {
            "id": "evt_forged", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_alpha_searchable", "object": "payment_intent",
                                "amount": 12500, "currency": "eur", "status": "succeeded"}},
        }  # fmt: skip
        for headers in ({}, {"Stripe-Signature": "t=1700000000,v1=" + "0" * 64}):
            resp = client.post("/webhooks/stripe", json=forged, headers=headers)
            assert resp.status_code == 400, resp.status_code
        checked.add("/webhooks/<provider>")
    if "/csp-report" in present:
        report = {"csp-report": {"document-uri": "https://portal.test/p/x",
                                 "violated-directive": "script-src"}}  # fmt: skip
        resp = client.post("/csp-report", json=report, content_type="application/csp-report")
        assert resp.status_code < 300, resp.status_code
        checked.add("/csp-report")
    if "/metrics" in present:
        app.config["PORTAL_METRICS_TOKEN"] = "metrics-token-0123456789abcdef0123"
        assert client.get("/metrics").status_code == 404
        wrong = {"Authorization": "Bearer not-the-token"}
        assert client.get("/metrics", headers=wrong).status_code == 404
        right = {"Authorization": "Bearer metrics-token-0123456789abcdef0123"}
        assert client.get("/metrics", headers=right).status_code == 200
        checked.add("/metrics")
    for path in ("/healthz", "/readyz", "/api/v1/openapi.json", "/docs/api"):
        if path in present:
            resp = client.get(path)
            assert resp.status_code in (200, 503), (path, resp.status_code)
            assert not leaked(resp.get_data(as_text=True), hidden), path
            checked.add(path)
    if "/static/<path:filename>" in present:
        resp = client.get("/static/css/portal.css")
        assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
        resp.close()
        checked.add("/static/<path:filename>")
    apple = "/.well-known/apple-developer-merchantid-domain-association"
    if apple in present:  # unset here: a 404, and never anything of a merchant
        resp = client.get(apple)
        assert resp.status_code == 404 and not leaked(resp.get_data(as_text=True), hidden)
        checked.add(apple)
    if "/u/<token>" in present:  # a forged or foreign token stops nothing
        for forged in ("x", link_token(world.a.ids["open"]), "a" * 40 + "." + "b" * 43):
            assert client.get(f"/u/{forged}").status_code == 404, forged
            assert client.post(f"/u/{forged}").status_code == 404, forged
        checked.add("/u/<token>")
    checked |= _account_pages_check_their_token(app, world, present)
    after = everything()
    assert after == before, diff(before, after)
    assert checked == present, f"allow-listed without a check here: {present - checked}"


def _account_pages_check_their_token(app: Flask, world: World, present: set[str]) -> set[str]:
    """``/a/…``: a forged token, a /p/ link's token or another merchant's is a 404 on every
    page; B's account token never reaches A's group; A's request ids ticked on B's page are
    refused; a form without its link's form token is a 400."""
    account = {r for r in present if r.startswith("/a/")}
    if not account:
        return set()
    client = https_client(app)
    b_token = account_token(world.b.merchant.id, "CUST-BRAVO")
    forged = [
        "x",
        link_token(world.a.ids["open"]),
        account_token(world.a.merchant.id, "CUST-ALPHA")[:-2],
    ]
    values = {"group_id": world.a.ids["group"], "step": "3ds"}
    for rule in (r for r in rules(app) if r.rule in account):
        for capability in (*forged, b_token):
            path = fill(rule, {**values, "token": capability})
            for method in methods(rule):
                expected = 404 if capability != b_token or "group_id" in rule.arguments else None
                resp = client.open(path, method=method, data=FORM)
                if expected is not None:  # a form without its token: refused before that
                    refused = (expected, 400) if method in STATE_CHANGING else (expected,)
                    assert resp.status_code in refused, (method, path, resp.status_code)
    page = client.get(f"/a/{b_token}")
    assert page.status_code == 200 and not leaked(page.get_data(as_text=True), markers(world))
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, "B's account page has its form"
    ticked = {"csrf_token": csrf.group(1), "request": world.a.ids["deposit"]}
    assert client.post(f"/a/{b_token}/pay", data=ticked).status_code == 422
    assert (
        client.post(f"/a/{b_token}/pay", data={"request": world.a.ids["deposit"]}).status_code
        == 400
    )
    return account


def test_the_account_link_of_another_merchants_reference_is_the_callers_own(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """POST /customers/CUST-ALPHA/link with B's key: B's own customer of that name, whose
    page lists nothing of A's; A's key gets A's (the control)."""
    before = rows_of(world.a.merchant.id)
    path = "/api/v1/customers/CUST-ALPHA/link"
    b_link = client.post(path, headers=world.b.merchant.headers)
    assert b_link.status_code == 200 and b_link.json["open_requests"] == []
    assert not leaked(b_link.get_data(as_text=True), ids_of(world.a.merchant.id))
    shown = https_client(app).get(b_link.json["url"].split("://", 1)[1].partition("/")[2])
    assert shown.status_code == 200 and world.a.ids["deposit"] not in shown.text
    a_link = client.post(path, headers=world.a.merchant.headers)
    assert world.a.ids["deposit"] in a_link.json["open_requests"]
    assert rows_of(world.a.merchant.id) == before


# --- the development tools ------------------------------------------------------------


def test_development_only_routes_are_listed_read_only_and_for_this_machine(
    app: Flask, world: World, tmp_path
) -> None:
    """The routes a development app adds to the URL map are exactly DEV_ONLY; each is
    GET only, changes nothing, and answers a client on another machine with a 404."""
    from portal.notifications.mail import send_mail
    from tests.functional.devtools.conftest import make_dev_app

    dev = make_dev_app(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path)
    here = {r.rule for r in rules(app)}
    added = [r for r in rules(dev) if r.rule not in here]
    assert {r.rule for r in added} == set(DEV_ONLY), "list every development route"
    assert all(reason.strip() for reason in DEV_ONLY.values())
    assert all(r.endpoint.startswith("devtools.") for r in added)
    assert all(methods(r) == ["GET"] for r in added), "the tools only read"
    with dev.app_context():
        send_mail("ann.alpha@example.com", "Shop Alpha", "Ann Alpha", "<p>Ann Alpha</p>")
        name = next((tmp_path / "mail").glob("*.eml")).stem
        before = everything()
        client = dev.test_client()
        for rule in added:
            path = fill(rule, {"name": name})
            for address in ("192.0.2.7", "10.1.2.3", "2001:db8::7"):
                resp = client.get(path, environ_base={"REMOTE_ADDR": address})
                assert resp.status_code == 404, (path, address, resp.status_code)
                assert not leaked(resp.get_data(as_text=True), ALPHA_TEXTS), (path, address)
            for bad in ("POST", "PUT", "DELETE"):
                assert client.open(path, method=bad).status_code in (400, 405), (bad, path)
            assert client.get(path).status_code == 200, path  # the control: loopback
        assert everything() == before, diff(before, everything())
        db.session.remove()
        db.engine.dispose()
