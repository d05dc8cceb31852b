"""The API's JSON shapes of payment requests and payments."""

from __future__ import annotations

from typing import Any

from portal.db_types import isoformat
from portal.delivery.services import deliveries_for, delivery_json
from portal.links import link_url, qr_code_url
from portal.payment_requests.models import PaymentRequest


def payment_request_json(pr: PaymentRequest, deliveries: list[Any] | None = None) -> dict[str, Any]:
    """The API object; ``deliveries`` may be given to spare a query (a request just made)."""
    body: dict[str, Any] = {
        "id": pr.id,
        "object": "payment_request",
        "kind": pr.kind,
        "status": pr.status,
        "currency": pr.currency,
        "amount": pr.amount,
        "amount_paid": pr.amount_paid,
        "amount_due": pr.amount_due,
        "amount_refunded": pr.amount_refunded,
        "reference": pr.reference,
        "description": pr.description,
        "customer": {
            "name": pr.customer_name,
            "email": pr.customer_email,
            "phone": pr.customer_phone,
            "locale": pr.customer_locale,
            "reference": pr.customer_reference,
        },
        "due_date": pr.due_date.isoformat() if pr.due_date else None,
        "expires_at": isoformat(pr.expires_at),
        "metadata": pr.metadata_dict,
        "allow_partial": pr.allow_partial,
        "url": link_url(pr.id),
        "qr_code_url": qr_code_url(pr.id),
        "created_at": isoformat(pr.created_at),
        "paid_at": isoformat(pr.paid_at),
        "voided_at": isoformat(pr.voided_at),
        "opens": {
            "count": pr.open_count,
            "first_opened_at": isoformat(pr.first_opened_at),
            "last_opened_at": isoformat(pr.last_opened_at),
        },
        "deliveries": [
            delivery_json(d)
            for d in (deliveries if deliveries is not None else deliveries_for(pr.id))
        ],
    }
    if pr.kind == "statement":
        body["statement"] = {
            "period_start": pr.period_start.isoformat() if pr.period_start else None,
            "period_end": pr.period_end.isoformat() if pr.period_end else None,
            "balance": pr.balance,
            "lines": [
                {
                    "date": ln.date.isoformat() if ln.date else None,
                    "description": ln.description,
                    "amount": ln.amount,
                    "reference": ln.reference,
                }
                for ln in pr.statement_lines
            ],
        }
    elif pr.kind == "order_deposit":
        body["allow_full_payment"] = pr.allow_full_payment
        body["order"] = {
            "reference": pr.order_reference,
            "total": pr.order_total,
            "lines": [
                {
                    "description": ln.description,
                    "quantity": ln.quantity,
                    "unit_amount": ln.unit_amount,
                }
                for ln in pr.order_lines
            ],
        }
    else:
        body["wallet"] = {
            "min_amount": pr.wallet_min,
            "max_amount": pr.wallet_max,
            "suggested": list(pr.wallet_suggested or []),
        }
    return body
