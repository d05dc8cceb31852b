"""The OpenAPI 3.1 description of ``/api/v1`` (served at ``/api/v1/openapi.json``).

Each endpoint added to the API adds its path here; a test checks that every
API route is described and that the document validates.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from portal.validation import MAX_AMOUNT, MAX_QUANTITY

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
DATE = {"type": "string", "format": "date"}
DATETIME = {"type": "string", "format": "date-time"}
AMOUNT = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_AMOUNT,
    "description": "Minor units (cents).",
}
SIGNED_AMOUNT = {"type": "integer", "minimum": -MAX_AMOUNT, "maximum": MAX_AMOUNT}


def _error(description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref("Error")}},
    }


ERRORS = {
    "400": _error("Malformed request (not JSON, not an object)."),
    "401": _error("No or bad API key."),
    "404": _error("Not found (also another merchant's object)."),
    "409": _error("Conflict: state or idempotency."),
    "422": _error("Valid JSON with invalid values; `error.code` says which rule."),
    "429": _error("Rate limited; see Retry-After."),
    "503": _error("Database briefly unreachable; nothing was done. Retry after Retry-After."),
}

IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Same key and body: same answer. Same key, other body: 409.",
}


def json_content(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def operation(
    op_id: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    body: Schema | None = None,
    params: list[Schema] | None = None,
    public: bool = False,
) -> Schema:
    operation: Schema = {
        "operationId": op_id,
        "summary": summary,
        "parameters": params or [],
        "responses": {**responses, **({} if public else ERRORS)},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if public:
        operation["security"] = []
    return operation


def path_param(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": STR, "description": description}


def query_param(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,  # "?limit=" is the same as no limit
        "schema": schema,
        "description": description,
    }


CUSTOMER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {**STR, "maxLength": 200},
        "email": {**STR, "format": "email", "maxLength": 254},
        "phone": {**STR, "description": "Normalised to E.164."},
        "locale": {"type": "string", "enum": ["en", "fr", "nl"]},
        "reference": {**STR, "maxLength": 100},
    },
}

STATEMENT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "period_start": DATE,
        "period_end": DATE,
        "balance": {**SIGNED_AMOUNT, "description": "Minor units; amount must not exceed it."},
        "lines": {
            "type": "array",
            "maxItems": 500,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["description", "amount"],
                "properties": {
                    "date": DATE,
                    "description": {**STR, "maxLength": 300},
                    "amount": {
                        **SIGNED_AMOUNT,
                        "description": "Minor units; negative for credits.",
                    },
                    "reference": {**STR, "maxLength": 100},
                },
            },
        },
    },
}

ORDER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "reference": {**STR, "maxLength": 100},
        "total": AMOUNT,
        "lines": {
            "type": "array",
            "maxItems": 500,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["description", "unit_amount"],
                "properties": {
                    "description": {**STR, "maxLength": 300},
                    "quantity": {**INT, "minimum": 1, "maximum": MAX_QUANTITY},
                    "unit_amount": {**INT, "minimum": 0, "maximum": MAX_AMOUNT},
                },
            },
        },
    },
}

WALLET = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "min_amount": AMOUNT,
        "max_amount": AMOUNT,
        "suggested": {"type": "array", "maxItems": 6, "items": AMOUNT},
    },
}

CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "currency"],
    "properties": {
        "kind": {"type": "string", "enum": ["statement", "wallet_topup", "order_deposit"]},
        "currency": {**STR, "description": "ISO 4217; the merchant's currency."},
        "amount": {
            **AMOUNT,
            "description": "Minor units; amount due, deposit, or fixed top-up. "
            "Omit for a customer-chosen top-up.",
        },
        "reference": {**STR, "maxLength": 100},
        "description": {**STR, "maxLength": 500},
        "customer": CUSTOMER,
        "due_date": DATE,
        "expires_at": DATETIME,
        "metadata": {
            "type": "object",
            "maxProperties": 50,
            "propertyNames": {"minLength": 1, "maxLength": 40},
            "additionalProperties": {"type": "string", "maxLength": 500},
        },
        "statement": STATEMENT,
        "order": ORDER,
        "wallet": WALLET,
        "allow_partial": BOOL,
        "allow_full_payment": BOOL,
        "send": {
            "type": "array",
            "maxItems": 2,
            "items": {"type": "string", "enum": ["email", "sms"]},
        },
    },
    # What each kind needs, and the sections and options that belong to other kinds.
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": "statement"}}},
            "then": {
                "required": ["amount"],
                "properties": {
                    "order": False,
                    "wallet": False,
                    "allow_full_payment": {"const": False},
                },
            },
        },
        {
            "if": {"properties": {"kind": {"const": "order_deposit"}}},
            "then": {
                "required": ["amount", "order"],
                "properties": {"statement": False, "wallet": False},
            },
        },
        {
            "if": {"properties": {"kind": {"const": "wallet_topup"}}},
            "then": {
                "properties": {
                    "statement": False,
                    "order": False,
                    "allow_partial": {"const": False},
                    "allow_full_payment": {"const": False},
                },
            },
        },
    ],
}


def record(properties: Schema) -> Schema:
    """An object that always carries every one of its ``properties``."""
    return {"type": "object", "required": list(properties), "properties": properties}


def _nullable_strings(*names: str) -> Schema:
    return record(dict.fromkeys(names, nullable(STR)))


STATEMENT_OUT = {
    "type": "object",
    "required": ["period_start", "period_end", "balance", "lines"],
    "properties": {
        "period_start": nullable(DATE),
        "period_end": nullable(DATE),
        "balance": nullable(INT),
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["date", "description", "amount", "reference"],
                "properties": {
                    "date": nullable(DATE),
                    "description": STR,
                    "amount": INT,
                    "reference": nullable(STR),
                },
            },
        },
    },
}

ORDER_OUT = {
    "type": "object",
    "required": ["reference", "total", "lines"],
    "properties": {
        "reference": nullable(STR),
        "total": INT,
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["description", "quantity", "unit_amount"],
                "properties": {"description": STR, "quantity": INT, "unit_amount": INT},
            },
        },
    },
}

WALLET_OUT = {
    "type": "object",
    "required": ["min_amount", "max_amount", "suggested"],
    "properties": {
        "min_amount": nullable(INT),
        "max_amount": nullable(INT),
        "suggested": {"type": "array", "items": INT},
    },
    "description": "Bounds of a customer-chosen top-up (null for a fixed amount).",
}


def _section_for(kind: str, section: str) -> Schema:
    """A request of ``kind`` carries its ``section`` (and allow_full_payment for deposits)."""
    required = [section, "allow_full_payment"] if kind == "order_deposit" else [section]
    return {"if": {"properties": {"kind": {"const": kind}}}, "then": {"required": required}}


_PAYMENT_REQUEST_PROPERTIES: Schema = {
    "id": {**STR, "pattern": "^pr_"},
    "object": {"const": "payment_request"},
    "kind": {"type": "string", "enum": ["statement", "wallet_topup", "order_deposit"]},
    "status": {
        "type": "string",
        "enum": ["open", "partially_paid", "paid", "void", "expired"],
    },
    "currency": STR,
    "amount": nullable(INT),
    "amount_paid": INT,
    "amount_due": nullable(INT),
    "amount_refunded": INT,
    "reference": nullable(STR),
    "description": nullable(STR),
    "customer": _nullable_strings("name", "email", "phone", "locale", "reference"),
    "due_date": nullable(DATE),
    "expires_at": DATETIME,
    "metadata": {"type": "object", "additionalProperties": STR},
    "allow_partial": BOOL,
    "allow_full_payment": BOOL,
    "url": {**STR, "format": "uri", "description": "The customer's signed link."},
    "qr_code_url": {**STR, "format": "uri"},
    "created_at": DATETIME,
    "paid_at": nullable(DATETIME),
    "voided_at": nullable(DATETIME),
    "deliveries": {"type": "array", "items": ref("LinkDelivery")},
    "opens": {
        "type": "object",
        "required": ["count", "first_opened_at", "last_opened_at"],
        "properties": {
            "count": INT,
            "first_opened_at": nullable(DATETIME),
            "last_opened_at": nullable(DATETIME),
        },
    },
    "statement": STATEMENT_OUT,
    "order": ORDER_OUT,
    "wallet": WALLET_OUT,
}
PAYMENT_REQUEST = {
    "type": "object",
    # Every field is always there; the kind's own section only on that kind.
    "required": [
        name
        for name in _PAYMENT_REQUEST_PROPERTIES
        if name not in ("statement", "order", "wallet", "allow_full_payment")
    ],
    "allOf": [
        _section_for("statement", "statement"),
        _section_for("order_deposit", "order"),
        _section_for("wallet_topup", "wallet"),
    ],
    "properties": _PAYMENT_REQUEST_PROPERTIES,
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": STR, "message": STR, "field": STR},
        }
    },
}


def list_of(item: str) -> Schema:
    """A page of a list: ``data`` holds ``item`` objects, ``has_more`` says if more follow."""
    return {
        "type": "object",
        "required": ["object", "data", "has_more", "next_starting_after"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": ref(item)},
            "has_more": BOOL,
            "next_starting_after": nullable(STR),
        },
    }


def base_paths() -> dict[str, Schema]:
    rid = path_param("request_id", "A payment request id (pr_…).")
    return {
        "/payment-requests": {
            "post": operation(
                "createPaymentRequest",
                "Create a payment request (statement, wallet top-up or order deposit).",
                {"201": json_content(ref("PaymentRequest"), "Created.")},
                body=ref("CreatePaymentRequest"),
                params=[IDEMPOTENCY],
            ),
            "get": operation(
                "listPaymentRequests",
                "List payment requests, newest first.",
                {"200": json_content(list_of("PaymentRequest"))},
                params=[
                    query_param("status", STR, "Only this status."),
                    query_param("reference", STR, "Only this merchant reference."),
                    query_param("customer_reference", STR, "Only this customer."),
                    query_param("limit", {**INT, "minimum": 1, "maximum": 100}, "Page size (20)."),
                    query_param("starting_after", STR, "Cursor: the last id of the previous page."),
                ],
            ),
        },
        "/payment-requests/{request_id}": {
            "get": operation(
                "getPaymentRequest",
                "Read a payment request.",
                {"200": json_content(ref("PaymentRequest"))},
                params=[rid],
            )
        },
        "/payment-requests/{request_id}/void": {
            "post": operation(
                "voidPaymentRequest",
                "Void a payment request while nothing is paid.",
                {"200": json_content(ref("PaymentRequest"))},
                params=[rid, IDEMPOTENCY],
            )
        },
        "/payment-requests/void": {
            "post": operation(
                "voidCustomerPaymentRequests",
                "Void every open request of one customer.",
                {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["object", "count", "ids"],
                            "properties": {
                                "object": {"const": "void_result"},
                                "count": INT,
                                "ids": {"type": "array", "items": STR},
                            },
                        }
                    )
                },
                body={
                    "type": "object",
                    "required": ["customer_reference"],
                    "properties": {"customer_reference": STR},
                },
                params=[IDEMPOTENCY],
            )
        },
        "/openapi.json": {
            "get": operation(
                "getOpenApi",
                "This document.",
                {"200": json_content({"type": "object"})},
                public=True,
            )
        },
    }


_LINK_DELIVERY_PROPERTIES: Schema = {
    "id": {**STR, "pattern": "^ld_"},
    "object": {"const": "link_delivery"},
    "channel": {"type": "string", "enum": ["email", "sms"]},
    "destination": {**STR, "description": "Masked address or number."},
    "status": {"type": "string", "enum": ["queued", "sent", "failed"]},
    "attempts": INT,
    "provider_message_id": nullable(STR),
    "error": nullable(STR),
    "created_at": DATETIME,
    "sent_at": nullable(DATETIME),
}
LINK_DELIVERY = record(_LINK_DELIVERY_PROPERTIES)

# Other modules (events, refunds, sending) register their paths and schemas here.
EXTRA_PATHS: dict[str, Schema] = {}
EXTRA_SCHEMAS: dict[str, Schema] = {}


def openapi_document() -> Schema:
    base = current_app.config["PORTAL_BASE_URL"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Payment portal API",
            "version": "1.0.0",
            "description": "Create payment links for statements, wallet top-ups and order "
            "deposits; amounts are integers in minor units.",
        },
        "servers": [{"url": f"{base}/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {**base_paths(), **EXTRA_PATHS},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": ERROR,
                "PaymentRequest": PAYMENT_REQUEST,
                "CreatePaymentRequest": CREATE,
                "LinkDelivery": LINK_DELIVERY,
                **EXTRA_SCHEMAS,
            },
        },
    }
