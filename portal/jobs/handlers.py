"""Imports every module that registers job handlers, so any process can run any job."""

import portal.delivery.services
import portal.ledger.callbacks
import portal.ledger.endpoints
import portal.merchant_console.accounts
import portal.notices.services
import portal.payment_requests.renewal
import portal.payments.receipts
import portal.payments.refunds  # noqa: F401
