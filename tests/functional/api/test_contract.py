"""One contract: the limits the OpenAPI document states are the limits the API enforces,
because both come from the models of portal/api/schemas.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.factories import deposit_body, statement_body, wallet_body

URL = "/api/v1/payment-requests"


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:  # "X or null": the X
        schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        return resolve(doc, schema)
    return schema


def documented(doc: dict[str, Any], model: str, path: list[str]) -> dict[str, Any]:
    schema = resolve(doc, {"$ref": f"#/components/schemas/{model}"})
    for part in path:
        schema = resolve(doc, schema["items"] if part == "*" else schema["properties"][part])
    return schema


def put(body: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for part in path[:-1]:
        target = target[0] if part == "*" else target[part]
    target[path[-1]] = value
    return body


# (model, body, path of the field, what the limit is about, the code past it)
LIMITS = [
    ("CreateStatement", statement_body, ["reference"], "maxLength", "too_long"),
    ("CreateStatement", statement_body, ["description"], "maxLength", "too_long"),
    ("CreateStatement", statement_body, ["customer", "name"], "maxLength", "too_long"),
    ("CreateStatement", statement_body, ["customer", "reference"], "maxLength", "too_long"),
    ("CreateStatement", statement_body, ["statement", "lines", "*", "description"], "maxLength",
     "too_long"),
    ("CreateStatement", statement_body, ["statement", "lines", "*", "reference"], "maxLength",
     "too_long"),
    ("CreateOrderDeposit", deposit_body, ["order", "lines", "*", "quantity"], "maximum",
     "invalid_value"),
    ("CreateOrderDeposit", deposit_body, ["order", "lines", "*", "quantity"], "minimum",
     "invalid_value"),
    ("CreateWalletTopup", wallet_body, ["wallet", "suggested"], "maxItems", "too_many_items"),
    ("CreateStatement", statement_body, ["statement", "lines", "*", "amount"], "maximum",
     "invalid_value"),
    ("CreateStatement", statement_body, ["statement", "lines", "*", "amount"], "minimum",
     "invalid_value"),
    ("CreateStatement", statement_body, ["send"], "maxItems", "too_many_items"),
]  # fmt: skip


def _at(kind: str, limit: int, past: bool, sample: Any) -> Any:
    if kind == "maxLength":
        return "x" * (limit + (1 if past else 0))
    if kind == "maxItems":
        return [sample] * (limit + (1 if past else 0))
    if kind == "maximum":
        return limit + (1 if past else 0)
    return limit - (1 if past else 0)


@pytest.mark.parametrize(("model", "factory", "path", "kind", "code"), LIMITS,
                         ids=[".".join(x[2]) + ":" + x[3] for x in LIMITS])  # fmt: skip
def test_the_documents_limits_are_the_ones_enforced(client, merchant, model, factory, path,
                                                    kind, code):  # fmt: skip
    doc = client.get("/api/v1/openapi.json").json
    schema = documented(doc, model, path)
    limit = schema[kind]
    field = ".".join(path).replace(".*", "[0]")
    sample = {"send": "email", "suggested": 1000}.get(path[-1], 1)
    past = client.post(URL, json=put(factory(), path, _at(kind, limit, True, sample)),
                       headers=merchant.headers)  # fmt: skip
    assert past.status_code == 422, past.json
    assert past.json["error"]["code"] == code and past.json["error"]["field"] == field
    at_limit = client.post(URL, json=put(factory(), path, _at(kind, limit, False, sample)),
                           headers=merchant.headers)  # fmt: skip
    # At the limit the field is fine (another rule of the merchant may still say no).
    assert at_limit.status_code == 201 or at_limit.json["error"]["field"] != field, at_limit.json
