"""Rows as the API's answers: each builds the model of :mod:`portal.api.schemas` that says
its shape (and validates it: an answer that breaks the contract fails here, not at the
merchant's)."""

from __future__ import annotations

from typing import Any

from portal.api import schemas
from portal.delivery.models import LinkDelivery
from portal.delivery.services import deliveries_for
from portal.ledger.models import CallbackDelivery, Event, event_body
from portal.links import link_url, qr_code_url
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Refund


def link_delivery_answer(d: LinkDelivery) -> schemas.LinkDelivery:
    return schemas.LinkDelivery(
        id=d.id, channel=d.channel, destination=d.destination, status=d.status,
        attempts=d.attempts, provider_message_id=d.provider_message_id, error=d.error,
        created_at=d.created_at, sent_at=d.sent_at,
    )  # fmt: skip


def _section(pr: PaymentRequest) -> dict[str, Any]:
    if pr.kind == "statement":
        return {
            "statement": schemas.StatementOut(
                period_start=pr.period_start, period_end=pr.period_end, balance=pr.balance,
                lines=[
                    schemas.StatementLineOut(date=ln.date, description=ln.description,
                                             amount=ln.amount, reference=ln.reference)
                    for ln in pr.statement_lines
                ],
            )
        }  # fmt: skip
    if pr.kind == "order_deposit":
        return {
            "allow_full_payment": pr.allow_full_payment,
            "order": schemas.OrderOut(
                reference=pr.order_reference, total=pr.order_total,
                lines=[
                    schemas.OrderLineOut(description=ln.description, quantity=ln.quantity,
                                         unit_amount=ln.unit_amount)
                    for ln in pr.order_lines
                ],
            ),
        }  # fmt: skip
    return {
        "wallet": schemas.WalletOut(
            min_amount=pr.wallet_min, max_amount=pr.wallet_max,
            suggested=list(pr.wallet_suggested or []),
        )
    }  # fmt: skip


def payment_request_answer(
    pr: PaymentRequest, deliveries: list[LinkDelivery] | None = None
) -> schemas.PaymentRequest:
    """The API object; ``deliveries`` may be given to spare a query (a request just made)."""
    model = {
        "statement": schemas.StatementRequest,
        "wallet_topup": schemas.WalletTopupRequest,
        "order_deposit": schemas.OrderDepositRequest,
    }[pr.kind]
    sent = deliveries if deliveries is not None else deliveries_for(pr.id)
    return schemas.PaymentRequest(
        model(
            id=pr.id, kind=pr.kind, status=pr.status, currency=pr.currency, amount=pr.amount,
            amount_paid=pr.amount_paid, amount_due=pr.amount_due,
            amount_refunded=pr.amount_refunded, reference=pr.reference,
            description=pr.description,
            customer=schemas.CustomerOut(
                name=pr.customer_name, email=pr.customer_email, phone=pr.customer_phone,
                locale=pr.customer_locale, reference=pr.customer_reference,
            ),
            due_date=pr.due_date, expires_at=None if pr.reusable else pr.expires_at,
            metadata=pr.metadata_dict, allow_partial=pr.allow_partial, reusable=pr.reusable,
            parent_request_id=pr.parent_request_id, reminders=pr.reminders, url=link_url(pr.id),
            qr_code_url=qr_code_url(pr.id),
            created_at=pr.created_at, paid_at=pr.paid_at, voided_at=pr.voided_at,
            opens=schemas.Opens(
                count=pr.open_count, first_opened_at=pr.first_opened_at,
                last_opened_at=pr.last_opened_at,
            ),
            deliveries=[link_delivery_answer(d) for d in sent],
            **_section(pr),
        )
    )  # fmt: skip


def payment_request_json(pr: PaymentRequest, deliveries: list[Any] | None = None) -> dict[str, Any]:
    return payment_request_answer(pr, deliveries).model_dump(mode="json")


def refund_answer(refund: Refund) -> schemas.Refund:
    payment = refund.payment
    return schemas.Refund(
        id=refund.id, payment_id=refund.payment_id, amount=refund.amount,
        currency=refund.currency, status=refund.status, payment_status=payment.status,
        payment_amount_refunded=payment.amount_refunded, created_at=refund.created_at,
    )  # fmt: skip


def event_answer(event: Event) -> schemas.Event:
    """What the ledger's callbacks carry (event_body), held to the API's Event shape."""
    return schemas.Event.model_validate(event_body(event))


def callback_delivery_answer(d: CallbackDelivery) -> schemas.CallbackDelivery:
    return schemas.CallbackDelivery(
        id=d.id, event_id=d.event_id, endpoint_id=d.endpoint_id, status=d.status,
        attempts=d.attempts, next_attempt_at=d.next_attempt_at,
    )  # fmt: skip
