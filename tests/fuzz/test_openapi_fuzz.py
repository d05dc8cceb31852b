"""Schemathesis against the portal's own OpenAPI document: every operation, with a
valid API key, never a 5xx, and every response as the document says.

Each operation is fuzzed three ways: data that fits the document (positive), data that
breaks it (negative: it must be refused with a documented 4xx and a JSON error), and
fitting data aimed at real objects (a payment request, a settled payment, an event), so
that void, send, refund and redeliver run their whole path, not only the 404.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from portal.api.schemas import MAX_AMOUNT
from portal.delivery.models import LinkDelivery
from portal.extensions import db
from portal.jobs.models import Job
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackDelivery, Event
from portal.merchants.models import Merchant
from portal.money import to_major
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import MAX_LIFETIME
from portal.payments.models import Refund
from portal.payments.services import fulfil_payment, start_payment
from tests.factories import MerchantWithKey, make_merchant, make_request, statement_body
from tests.fuzz import FUZZ_EXAMPLES

# Cases per operation and way; PORTAL_FUZZ_EXAMPLES=800 for a deep run (tests/fuzz/__init__).
EXAMPLES = FUZZ_EXAMPLES
# Every check runs but "schema-valid data is accepted": JSON Schema cannot say that a
# currency must be the merchant's, or an amount under its ceiling. Those answer 422 with
# a documented code, and the other checks hold them to the document.
EXCLUDED = [positive_data_acceptance]


def _dates() -> st.SearchStrategy[date]:
    """Any date, but often one at the ends of the calendar (where date arithmetic overflows)
    or in the next months (where an expiry is accepted and the create goes all the way)."""
    today = date.today()
    return st.one_of(
        st.dates(),
        st.dates(max_value=date(1, 1, 31)),
        st.dates(min_value=date(9999, 12, 1)),
        st.dates(min_value=today, max_value=today + timedelta(days=150)),
    )


# RFC 3339 offsets are whole minutes within a day.
_OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
schemathesis.openapi.format("date", _dates().map(date.isoformat))
schemathesis.openapi.format(
    "date-time",
    st.builds(
        lambda day, moment, zone: datetime.combine(day, moment, zone).isoformat(),
        _dates(),
        st.times(),
        _OFFSETS,
    ),
)


def _objects(merchant: MerchantWithKey) -> dict[str, list[str]]:
    """Real ids for the path parameters: open requests, a settled payment, its events."""
    # PATCH /merchant may have been fuzzed into a small ceiling (a valid setting): these
    # objects are made under the highest one, as at the start.
    db.session.get(Merchant, merchant.id).ceiling = MAX_AMOUNT
    db.session.commit()
    body = statement_body(
        customer={"name": "Jan", "email": "jan@example.com", "phone": "+32470123456"}
    )
    requests = [make_request(merchant, body) for _ in range(3)]
    paid = make_request(merchant, body)
    payment = start_payment(paid, None)
    fulfil_payment(payment.id)
    db.session.commit()
    events = db.session.scalars(db.select(Event.id).where(Event.merchant_id == merchant.id)).all()
    assert events, "the settled payment wrote its events"
    endpoint = add_endpoint(merchant.id, "https://127.0.0.1:9/fuzz")  # loopback: tests allow it
    db.session.commit()
    return {
        "endpoint_id": [endpoint.id],
        "request_id": [pr.id for pr in requests] + [paid.id],
        "payment_id": [payment.id],
        "event_id": list(events),
        "reference": ["C-1", "C 1 é"],  # customers' references (the account link)
    }


def _in_merchant_currency(case: Any) -> Any:
    """Positive bodies in the merchant's currency: a random ISO code stops a create at its
    second check, and the rest of the body (dates, lines, wallet) would never be read."""
    if isinstance(case.body, dict) and "currency" in case.body:
        case.body["currency"] = "EUR"
    return case


def _fuzz(strategy: st.SearchStrategy, headers: dict[str, str], examples: int) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same cases on every run: a CI failure reproduces
        database=None,  # nothing written to the working tree
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=EXCLUDED)

    fuzz()


def test_every_operation_answers_as_documented(app: Flask) -> None:
    # The highest ceiling there is: amounts are refused by the document's rules, not by it.
    merchant = make_merchant(ceiling=str(to_major(MAX_AMOUNT, "EUR")))
    add_endpoint(merchant.id, "http://127.0.0.1:9/hook")  # so that redeliveries queue sends
    db.session.commit()
    headers = merchant.headers
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    document = app.test_client().get("/api/v1/openapi.json").json
    documented = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    # schemathesis leaves out the document's own operation
    assert {op.label for op in operations} == documented - {"GET /openapi.json"}

    failures: dict[str, BaseException] = {}
    for operation in operations:
        # The key goes in as an explicit header: what negative cases break is the rest (a
        # body, a query, an Idempotency-Key; a path string cannot be broken on the wire).
        spec = operation.definition.raw
        breakable = "requestBody" in spec or any(p["in"] != "path" for p in spec["parameters"])
        modes = list(GenerationMode) if breakable else [GenerationMode.POSITIVE]
        ways: dict[str, st.SearchStrategy] = {
            mode.value: operation.as_strategy(generation_mode=mode, headers=headers)
            for mode in modes
        }
        ways["positive"] = ways["positive"].map(_in_merchant_currency)
        names = re.findall(r"{(\w+)}", operation.path)
        if names:
            objects = _objects(merchant)  # fresh: the void before must not close the send
            ways["real objects"] = (
                st.fixed_dictionaries({name: st.sampled_from(objects[name]) for name in names})
                .flatmap(
                    lambda ids, op=operation: op.as_strategy(path_parameters=ids, headers=headers)
                )
                .map(_in_merchant_currency)
            )
        for way, strategy in ways.items():
            try:
                _fuzz(strategy, headers, EXAMPLES)
            # collect every operation's failures, then report (schemathesis raises a
            # BaseExceptionGroup when one operation fails in more than one way)
            except (Exception, BaseExceptionGroup) as exc:
                failures[f"{operation.label} ({way})"] = exc
                db.session.rollback()
    assert not failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())
    # The key was taken and the cases went deep: requests made, links sent, a refund, a
    # redelivery (not 4xx all the way down).
    for model, made_here in ((PaymentRequest, 4), (LinkDelivery, 0), (Refund, 0)):
        assert db.session.scalar(db.select(db.func.count()).select_from(model)) > made_here, model
    sends = db.session.scalar(
        db.select(db.func.count(Job.id)).where(Job.kind == "deliver_callback")
    )
    assert sends > db.session.scalar(db.select(db.func.count(CallbackDelivery.id)))


BODY_CASES = {
    "nested past the parser's depth": b"[" * 100_000,
    "a lone surrogate escape": b'{"reference": "\\ud800"}',
}
JSON_CASES = {
    "expiry before year 1 in UTC": {"expires_at": "0001-01-01T00:00:00+01:00"},
    "expiry after year 9999 in UTC": {"expires_at": "9999-12-31T23:59:59-01:00"},
    "order lines beyond any amount": {
        "kind": "order_deposit",
        "amount": 100,
        "order": {"lines": [{"description": "x", "quantity": 10**6, "unit_amount": 10**15}]},
    },
    "a quantity beyond its column": {
        "kind": "order_deposit",
        "amount": 100,
        "order": {"lines": [{"description": "x", "quantity": 2**40, "unit_amount": 1}]},
    },
}


@pytest.mark.parametrize("raw", BODY_CASES.values(), ids=BODY_CASES.keys())
def test_bodies_found_by_fuzzing_are_refused_as_json(client, merchant, raw):
    resp = client.post(
        "/api/v1/payment-requests",
        data=raw,
        headers={**merchant.headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["code"] == "invalid_json"
    assert db.session.scalar(db.select(db.func.count(PaymentRequest.id))) == 0


@pytest.mark.parametrize("fields", JSON_CASES.values(), ids=JSON_CASES.keys())
def test_values_found_by_fuzzing_are_refused_with_a_field(client, merchant, fields):
    body = {**statement_body(), **fields}
    if body["kind"] == "order_deposit":
        body.pop("statement")
    resp = client.post("/api/v1/payment-requests", json=body, headers=merchant.headers)
    assert resp.status_code == 422, resp.text
    assert resp.json["error"]["code"] in ("invalid_datetime", "invalid_value")
    assert resp.json["error"]["field"].split(".")[0] in fields
    assert db.session.scalar(db.select(db.func.count(PaymentRequest.id))) == 0


def test_a_far_due_date_gives_the_longest_lifetime(client, merchant):
    """Due in year 9999: the request lives its longest (120 days), no date overflow."""
    resp = client.post(
        "/api/v1/payment-requests",
        json=statement_body(due_date="9999-12-31"),
        headers=merchant.headers,
    )
    assert resp.status_code == 201, resp.text
    pr = db.session.get(PaymentRequest, resp.json["id"])
    assert pr.expires_at - pr.created_at == MAX_LIFETIME


# superscript two and Arabic-Indic one pass str.isdigit(); int() refuses the first
@pytest.mark.parametrize("limit", ["\u00b2", "\u0661", "9" * 5000, "+5", " 5"])
def test_a_limit_in_other_digits_is_refused(client, merchant, limit):
    for url in ("/api/v1/payment-requests", "/api/v1/events"):
        resp = client.get(url, query_string={"limit": limit}, headers=merchant.headers)
        assert resp.status_code == 422, (url, resp.text)
        assert resp.json["error"] == {
            "code": "invalid_value",
            "field": "limit",
            "message": resp.json["error"]["message"],
        }
