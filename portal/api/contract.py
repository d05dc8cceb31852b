"""How the models of :mod:`portal.api.schemas` meet HTTP: parsing into them with the API's
error codes, registering each operation, and the OpenAPI 3.1 document built from both.

An operation is declared once, where its view is::

    @operation(bp, "POST", "/payments/{payment_id}/refunds", body=CreateRefund,
               answers={201: Refund}, summary="Refund a payment…", idempotent=True)
    def create_refund(payment_id: str, body: CreateRefund) -> Response: ...

and the route, the validation of its body and query, and its entry in
``/api/v1/openapi.json`` all come from that one declaration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, current_app
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from portal.api import schemas
from portal.errors import Invalid

M = TypeVar("M", bound=BaseModel)

# Pydantic's error types, as the API's codes (docs/api.md); codes set by the models
# themselves (amount_below_minimum, invalid_email, …) pass through as they are.
CODES = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "string_too_long": "too_long",
    "too_long": "too_many_items",
    "union_tag_invalid": "invalid_kind",
    "union_tag_not_found": "missing_field",
    "string_too_short": "invalid_value",
    "literal_error": "invalid_value",
    "none_required": "invalid_value",
    "greater_than": "invalid_value",
    "greater_than_equal": "invalid_value",
    "less_than": "invalid_value",
    "less_than_equal": "invalid_value",
    "string_pattern_mismatch": "invalid_value",
}
TYPE_ERRORS = re.compile(r"^(\w+_type|\w+_parsing|int_from_float|model_attributes_type)$")


def field_path(loc: Iterable[Any]) -> str:
    """``("statement", "lines", 2, "amount")`` → ``statement.lines[2].amount``."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def invalid(exc: ValidationError, *, tagged: bool = False) -> Invalid:
    """The first error as the API says it; ``tagged``: a union's tag leads the location."""
    error = exc.errors()[0]
    loc = list(error["loc"])
    if tagged and error["type"] not in ("union_tag_invalid", "union_tag_not_found"):
        loc = loc[1:]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = ["kind"]
    kind = error["type"]
    code = CODES.get(kind) or ("invalid_type" if TYPE_ERRORS.match(kind) else kind)
    path = field_path(loc) or None
    return Invalid(code, _message(code, path, error["msg"]), path)


def _message(code: str, path: str | None, detail: str) -> str:
    name = path or "the body"
    return {
        "missing_field": f"{name} is required.",
        "unknown_field": f"{name} is not a known field.",
        "invalid_kind": "kind must be statement, wallet_topup or order_deposit.",
    }.get(code, f"{name}: {detail[:1].lower()}{detail[1:]}.")


def parse(model: type[M], data: Any) -> M:
    """``data`` as ``model``, or :class:`Invalid` (422) with the API's code and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        tagged = model is schemas.CreatePaymentRequest
        raise invalid(exc, tagged=tagged) from None


# --- operations -------------------------------------------------------------------------


@dataclass
class Operation:
    method: str
    path: str  # as OpenAPI writes it: /payments/{payment_id}/refunds
    operation_id: str
    summary: str
    answers: dict[int, tuple[type[BaseModel] | None, str]]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    idempotent: bool = False
    public: bool = False
    path_params: dict[str, str] = field(default_factory=dict)


OPERATIONS: list[Operation] = []


def operation(
    bp: Blueprint,
    method: str,
    path: str,
    *,
    summary: str,
    answers: dict[int, Any],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    idempotent: bool = False,
    public: bool = False,
    params: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the view as ``method path`` on ``bp`` and describe it in the document.
    ``answers``: status → response model (or ``(model, description)``)."""

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        described = {
            status: answer if isinstance(answer, tuple) else (answer, "OK")
            for status, answer in answers.items()
        }
        op_id = _camel(view.__name__)
        OPERATIONS.append(
            Operation(method, path, op_id, summary, described, body, query, idempotent, public,
                      params or {})
        )  # fmt: skip
        rule = re.sub(r"{(\w+)}", r"<\1>", path)
        bp.add_url_rule(rule, view.__name__, view, methods=[method])
        return view

    return register


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# --- the document -----------------------------------------------------------------------

ERRORS = {
    400: "Malformed request (not JSON, not an object).",
    401: "No or bad API key.",
    404: "Not found (also another merchant's object).",
    409: "Conflict: state or idempotency.",
    422: "Valid JSON with invalid values; `error.code` says which rule.",
    429: "Rate limited; see Retry-After.",
    503: "Database briefly unreachable; nothing was done. Retry after Retry-After.",
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Same key and body: same answer. Same key, other body: 409.",
}
REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


PDF = "application/pdf"  # an answer that is a document, not JSON (``answers={200: PDF}``)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _answer(model: Any, description: str) -> dict[str, Any]:
    if isinstance(model, str):
        binary = {"type": "string", "format": "binary"}
        return {"description": description, "content": {model: {"schema": binary}}}
    return _json(_ref(model) if model else {"type": "object"}, description)


def _query_parameters(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    defs.update(schema.get("$defs", {}))  # the enums its parameters refer to
    parameters = []
    for name, prop in schema["properties"].items():
        description = prop.pop("description", "")
        prop.pop("title", None)
        prop.pop("default", None)
        parameters.append({
            "name": name, "in": "query", "required": False,
            "allowEmptyValue": True,  # "?limit=" is the same as no limit
            "schema": prop, "description": description,
        })  # fmt: skip
    return parameters


def _operation(op: Operation, defs: dict[str, Any]) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
         "description": description}
        for name, description in op.path_params.items()
    ]  # fmt: skip
    if op.query is not None:
        parameters += _query_parameters(op.query, defs)
    if op.idempotent:
        parameters.append(IDEMPOTENCY)
    responses = {
        str(status): _answer(model, description)
        for status, (model, description) in op.answers.items()
    }
    if not op.public:
        responses.update({str(s): _json(_ref(schemas.Error), d) for s, d in ERRORS.items()})
    described: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "parameters": parameters,
        "responses": responses,
    }
    if op.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    if op.public:
        described["security"] = []
    return described


def _components() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(schemas.Error, "serialization")]
    for op in OPERATIONS:
        if op.body is not None:
            models.append((op.body, "validation"))
        models += [
            (m, "serialization") for m, _ in op.answers.values() if m and not isinstance(m, str)
        ]
    _, document = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    return document.get("$defs", {})


def openapi_document() -> dict[str, Any]:
    defs = _components()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, defs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Payment portal API",
            "version": "1.0.0",
            "description": "Create payment links for statements, wallet top-ups and order "
            "deposits; amounts are integers in minor units.",
        },
        "servers": [{"url": f"{current_app.config['PORTAL_BASE_URL']}/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": defs,
        },
    }
