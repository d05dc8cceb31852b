"""Every model, imported in one place so Alembic and ``create_all`` see them all."""

from portal.api.models import IdempotencyKey
from portal.delivery.models import LinkDelivery, ShortLink
from portal.jobs.models import Job
from portal.ledger.models import CallbackAttempt, CallbackDelivery, CallbackEndpoint, Event
from portal.merchant_console.models import MerchantLogo, MerchantSession, MerchantUser
from portal.merchants.models import ApiKey, Merchant
from portal.notices.models import MerchantNotice
from portal.payment_requests.models import OrderLine, PaymentRequest, StatementLine
from portal.payments.models import Payment, PaymentGroup, Refund
from portal.providers.circuit import ProviderCircuit
from portal.reminders.models import Reminder, ReminderOptOut
from portal.support.models import AuditLog, StaffSession, StaffUser
from portal.webhooks.models import StripeEvent

__all__ = [
    "ApiKey",
    "AuditLog",
    "CallbackAttempt",
    "CallbackDelivery",
    "CallbackEndpoint",
    "Event",
    "IdempotencyKey",
    "Job",
    "LinkDelivery",
    "Merchant",
    "MerchantLogo",
    "MerchantNotice",
    "MerchantSession",
    "MerchantUser",
    "OrderLine",
    "Payment",
    "PaymentGroup",
    "PaymentRequest",
    "ProviderCircuit",
    "Refund",
    "Reminder",
    "ReminderOptOut",
    "ShortLink",
    "StaffSession",
    "StaffUser",
    "StatementLine",
    "StripeEvent",
]
