"""The OpenAPI document validates and describes every /api/v1 route."""

from __future__ import annotations

import re

from openapi_spec_validator import validate


def test_openapi_is_valid_31_and_public(client):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.json
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_api_route_is_documented(app, client):
    doc = client.get("/api/v1/openapi.json").json
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} is not in openapi.json"


def test_documented_error_codes_shape(client, merchant):
    doc = client.get("/api/v1/openapi.json").json
    create = doc["paths"]["/payment-requests"]["post"]
    assert {"201", "400", "401", "409", "422"} <= set(create["responses"])
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CreatePaymentRequest"
    )
