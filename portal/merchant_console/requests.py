"""Payment requests made and sent by hand: the API's service, the user's merchant, the audit.

Services add and flush; the request commits.
"""

from __future__ import annotations

from typing import Any

from portal.delivery.services import send_link
from portal.merchant_console.accounts import audit
from portal.merchant_console.models import MerchantUser
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import create_payment_request, get_for_merchant, parse_create


def create_by_hand(user: MerchantUser, body: dict[str, Any]) -> PaymentRequest:
    """A request from the console's form body: the same contract and rules as
    ``POST /api/v1/payment-requests`` (raises :class:`portal.errors.Invalid`)."""
    pr = create_payment_request(user.merchant, parse_create(body))
    audit(user, "request.created", pr.id, request_id=pr.id, kind=pr.kind, amount=pr.amount)
    return pr


def request_of(user: MerchantUser, request_id: str) -> PaymentRequest:
    """The user's merchant's request (:class:`portal.errors.NotFound` for any other)."""
    return get_for_merchant(user.merchant, request_id)


def send_by_hand(user: MerchantUser, pr: PaymentRequest, channel: str, to: str | None) -> None:
    """Queue the link by e-mail or SMS, to the customer's address or the one typed."""
    delivery = send_link(pr, channel, to or None)
    audit(user, "request.sent", pr.id, request_id=pr.id, channel=channel,
          destination=delivery.destination)  # fmt: skip
