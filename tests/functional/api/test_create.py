"""Creating payment requests through the API: each kind, and every invalid input's code."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from portal.extensions import db
from portal.payment_requests.models import PaymentRequest
from tests.factories import deposit_body, make_merchant, statement_body, wallet_body

URL = "/api/v1/payment-requests"


def post(client, merchant, body, **headers):
    return client.post(URL, json=body, headers={**merchant.headers, **headers})


def test_create_statement(client, merchant):
    resp = post(client, merchant, statement_body(due_date="2026-12-15", metadata={"till": "3"}))
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert body["id"].startswith("pr_") and len(body["id"]) >= 25
    assert body["status"] == "open"
    assert body["kind"] == "statement"
    assert body["amount"] == 12500 and body["amount_due"] == 12500 and body["currency"] == "EUR"
    assert body["statement"]["balance"] == 15000
    assert [ln["reference"] for ln in body["statement"]["lines"]] == ["L1", "L2"]
    assert body["metadata"] == {"till": "3"}
    assert body["customer"]["locale"] == "nl"
    assert body["url"].startswith("https://portal.test/p/pr_")
    assert body["qr_code_url"].startswith(body["url"])
    # 30 days after the due date by default
    assert body["expires_at"].startswith("2027-01-14")
    assert resp.headers["Cache-Control"] == "no-store"


def test_create_wallet_topup_customer_chosen(client, merchant):
    resp = post(client, merchant, wallet_body())
    assert resp.status_code == 201, resp.json
    assert resp.json["amount"] is None
    assert resp.json["wallet"] == {
        "min_amount": 500,
        "max_amount": 50000,
        "suggested": [1000, 2000, 5000],
    }


def test_create_wallet_topup_fixed_amount(client, merchant):
    body = wallet_body(amount=2500)
    del body["wallet"]
    resp = post(client, merchant, body)
    assert resp.status_code == 201, resp.json
    assert resp.json["amount"] == 2500


def test_create_order_deposit(client, merchant):
    resp = post(client, merchant, deposit_body(allow_full_payment=True))
    assert resp.status_code == 201, resp.json
    assert resp.json["order"]["total"] == 10000
    assert resp.json["order"]["reference"] == "ORD-1"
    assert resp.json["allow_full_payment"] is True
    created = datetime.fromisoformat(resp.json["created_at"])
    expires = datetime.fromisoformat(resp.json["expires_at"])
    assert timedelta(days=13, hours=23) < expires - created <= timedelta(days=14)


def test_order_total_from_lines(client, merchant):
    body = deposit_body()
    del body["order"]["total"]
    resp = post(client, merchant, body)
    assert resp.status_code == 201
    assert resp.json["order"]["total"] == 10000


def test_statement_without_balance_or_lines(client, merchant):
    resp = post(client, merchant, {"kind": "statement", "currency": "EUR", "amount": 100})
    assert resp.status_code == 201, resp.json
    assert resp.json["statement"]["lines"] == []


@pytest.mark.parametrize(
    ("currency", "ceiling", "amount", "ok"),
    [
        ("JPY", None, 1_000_000, False),  # checked separately below: 10000.00 is 10,000 yen
        ("KWD", None, 10_000_000, True),  # 10,000.000 KWD in fils
        ("KWD", None, 10_000_001, False),
        ("EUR", "100000.00", 10_000_000, True),
        ("EUR", None, 1_000_001, False),
    ],
)
def test_ceiling_follows_currency_precision(client, app, currency, ceiling, amount, ok):
    m = make_merchant(name=f"{currency} shop", currency=currency, ceiling=ceiling)
    body = {"kind": "statement", "currency": currency, "amount": amount}
    resp = post(client, m, body)
    if currency == "JPY":
        # JPY has no minor unit: the default ceiling 10000.00 is 10,000 yen.
        assert m.merchant.ceiling == 10_000
        assert resp.status_code == 422
        assert resp.json["error"]["code"] == "amount_exceeds_ceiling"
        assert post(client, m, {**body, "amount": 10_000}).status_code == 201
        return
    if ok:
        assert resp.status_code == 201, resp.json
    else:
        assert resp.status_code == 422
        assert resp.json["error"] == {
            "code": "amount_exceeds_ceiling",
            "message": resp.json["error"]["message"],
            "field": "amount",
        }


def _set(body, path, value):
    target = body
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if value is DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


DELETE = object()
PAST = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
FAR = (datetime.now(UTC) + timedelta(days=121)).isoformat()

INVALID = [
    # (factory, path, value, code, field)
    (statement_body, "kind", DELETE, "missing_field", "kind"),
    (statement_body, "kind", "invoice", "invalid_kind", "kind"),
    (statement_body, "currency", DELETE, "missing_field", "currency"),
    (statement_body, "currency", "XYZ", "unsupported_currency", "currency"),
    (statement_body, "currency", 978, "unsupported_currency", "currency"),
    (statement_body, "currency", "USD", "currency_not_enabled", "currency"),
    (statement_body, "amount", DELETE, "missing_field", "amount"),
    (statement_body, "amount", 0, "amount_below_minimum", "amount"),
    (statement_body, "amount", -5, "amount_below_minimum", "amount"),
    (statement_body, "amount", 12.5, "invalid_type", "amount"),
    (statement_body, "amount", "1250", "invalid_type", "amount"),
    (statement_body, "amount", True, "invalid_type", "amount"),
    (statement_body, "amount", 1_000_001, "amount_exceeds_ceiling", "amount"),
    (statement_body, "amount", 15001, "amount_exceeds_balance", "amount"),
    (statement_body, "statement.balance", 16000, "lines_do_not_match_balance", "statement.lines"),
    (statement_body, "statement.lines.0.amount", "x", "invalid_type", "statement.lines[0].amount"),
    (statement_body, "statement.lines.0.description", DELETE, "missing_field",
     "statement.lines[0].description"),
    (statement_body, "statement.lines.0.date", "03/10/2026", "invalid_date",
     "statement.lines[0].date"),
    (statement_body, "statement.period_start", "2026-11-30", "invalid_period",
     "statement.period_end"),
    (statement_body, "statement.lines", "none", "invalid_type", "statement.lines"),
    (statement_body, "statement.colour", "red", "unknown_field", "statement.colour"),
    (statement_body, "order", {"total": 5}, "invalid_value", "order"),
    (statement_body, "reference", "x" * 101, "too_long", "reference"),
    (statement_body, "description", "x" * 501, "too_long", "description"),
    (statement_body, "customer.name", "x" * 201, "too_long", "customer.name"),
    (statement_body, "customer.email", "not-an-email", "invalid_email", "customer.email"),
    (statement_body, "customer.phone", "12", "invalid_phone", "customer.phone"),
    (statement_body, "customer.locale", "it", "unsupported_locale", "customer.locale"),
    (statement_body, "customer", "Jan", "invalid_type", "customer"),
    (statement_body, "metadata", {"k": 5}, "invalid_type", "metadata.k"),
    (statement_body, "metadata", ["a"], "invalid_type", "metadata"),
    (statement_body, "due_date", "tomorrow", "invalid_date", "due_date"),
    (statement_body, "expires_at", PAST, "expiry_in_past", "expires_at"),
    (statement_body, "expires_at", FAR, "expiry_too_far", "expires_at"),
    (statement_body, "expires_at", "2026-12-01T10:00:00", "invalid_datetime", "expires_at"),
    (statement_body, "allow_partial", "yes", "invalid_type", "allow_partial"),
    (statement_body, "allow_full_payment", True, "invalid_value", "allow_full_payment"),
    (statement_body, "send", ["fax"], "invalid_channel", "send[0]"),
    (statement_body, "surprise", 1, "unknown_field", "surprise"),
    (deposit_body, "amount", 10001, "deposit_exceeds_total", "amount"),
    (deposit_body, "order", DELETE, "missing_field", "order"),
    (deposit_body, "order.total", 9000, "lines_do_not_match_total", "order.lines"),
    (deposit_body, "order.lines.0.quantity", 0, "invalid_value", "order.lines[0].quantity"),
    (deposit_body, "order.lines.0.unit_amount", -1, "invalid_value", "order.lines[0].unit_amount"),
    (deposit_body, "order.total", 2_000_000, "lines_do_not_match_total", "order.lines"),
    (wallet_body, "wallet.min_amount", 60000, "invalid_bounds", "wallet.min_amount"),
    (wallet_body, "wallet.max_amount", 1_000_001, "amount_exceeds_ceiling", "wallet.max_amount"),
    (wallet_body, "wallet.suggested", [100], "amount_out_of_bounds", "wallet.suggested[0]"),
    (wallet_body, "wallet.suggested", [1000] * 7, "too_many_items", "wallet.suggested"),
    (wallet_body, "allow_partial", True, "invalid_value", "allow_partial"),
    (wallet_body, "amount", 1000, "invalid_value", "wallet"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("factory", "path", "value", "code", "field"),
    INVALID,
    ids=[f"{f.__name__}-{p}-{c}" for f, p, _, c, _ in INVALID],
)
def test_invalid_input_gets_422_with_code(client, merchant, factory, path, value, code, field):
    body = _set(copy.deepcopy(factory()), path, value)
    resp = post(client, merchant, body)
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["code"] == code
    assert resp.json["error"]["field"] == field
    assert resp.json["error"]["message"]
    assert db.session.query(PaymentRequest).count() == 0


def test_deposit_full_payment_total_over_ceiling(client, app):
    m = make_merchant(ceiling="50.00")
    body = deposit_body(allow_full_payment=True)
    body["order"] = {"total": 6000}
    body["amount"] = 1000
    resp = post(client, m, body)
    assert resp.status_code == 422
    assert resp.json["error"]["code"] == "amount_exceeds_ceiling"
    assert resp.json["error"]["field"] == "order.total"


@pytest.mark.parametrize(
    ("data", "content_type", "code"),
    [
        ("{not json", "application/json", "invalid_json"),
        ("[1, 2]", "application/json", "invalid_json"),
        ('"text"', "application/json", "invalid_json"),
        ("kind=statement", "application/x-www-form-urlencoded", "invalid_json"),
    ],
)
def test_malformed_body_is_400(client, merchant, data, content_type, code):
    resp = client.post(URL, data=data, content_type=content_type, headers=merchant.headers)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == code


def test_empty_body_is_missing_kind(client, merchant):
    resp = client.post(URL, headers=merchant.headers)
    assert resp.status_code == 422
    assert resp.json["error"]["code"] == "missing_field"


def test_statement_due_date_in_past_still_gets_future_expiry(client, merchant):
    resp = post(client, merchant, statement_body(due_date="2020-01-01"))
    assert resp.status_code == 201
    expires = datetime.fromisoformat(resp.json["expires_at"])
    assert expires > datetime.now(UTC) + timedelta(days=29)


def test_expiry_is_capped_at_120_days(client, merchant):
    far_due = (datetime.now(UTC) + timedelta(days=110)).date().isoformat()
    resp = post(client, merchant, statement_body(due_date=far_due))
    assert resp.status_code == 201
    expires = datetime.fromisoformat(resp.json["expires_at"])
    assert expires <= datetime.now(UTC) + timedelta(days=120)


def test_phone_is_normalised_to_e164(client, merchant):
    body = statement_body()
    body["customer"]["phone"] = "+32 470 12 34 56"
    resp = post(client, merchant, body)
    assert resp.status_code == 201
    assert resp.json["customer"]["phone"] == "+32470123456"


@pytest.mark.parametrize("count", [1, 7, 500])
def test_every_line_goes_in_with_one_insert_in_order(client, merchant, count):
    """The lines of a create are one multi-row INSERT, whatever their number (up to 500)."""
    lines = [
        {"date": "2026-10-03", "description": f"Line {i} 'quoted' %s ?", "amount": 100 + i,
         "reference": f"L{i}" if i % 2 else None}
        for i in range(count)
    ]  # fmt: skip
    body = statement_body(amount=sum(ln["amount"] for ln in lines))
    body["statement"]["lines"] = lines
    body["statement"]["balance"] = body["amount"]
    resp = post(client, merchant, body)
    assert resp.status_code == 201, resp.text
    got = client.get(f"{URL}/{resp.json['id']}", headers=merchant.headers).json
    stored = got["statement"]["lines"]
    assert [ln["description"] for ln in stored] == [ln["description"] for ln in lines]
    assert [ln["amount"] for ln in stored] == [ln["amount"] for ln in lines]
    assert [ln["reference"] for ln in stored] == [ln["reference"] for ln in lines]
    assert resp.json["statement"]["lines"] == stored
