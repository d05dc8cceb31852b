"""localstripe on a loopback port (a separate process), and signed Stripe events."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from tests.servers import free_port

WEBHOOK_SECRET = "whsec_test_portal_secret"

WRAPPER = """
import sys
from aiohttp import web
import localstripe.resources as resources
from localstripe.server import app
resources.store.dump_to_disk = lambda: None      # no pickle in the temp folder
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    # Importing localstripe (aiohttp) takes a second when idle, far longer on a busy
    # machine: the deadline only catches a server that never comes up.
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(f"{url}/v1/customers", auth=("sk_test_x", ""), timeout=5)
            break
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("localstripe did not start")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def stripe_server(localstripe_url: str) -> str:
    requests.delete(f"{localstripe_url}/_config/data", timeout=5)
    return localstripe_url


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header, as Stripe computes it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def intent_event(payment, event_type="payment_intent.succeeded", *, event_id=None, **changes):
    """A Stripe event for the payment's PaymentIntent (status follows the type)."""
    status = {
        "payment_intent.succeeded": "succeeded",
        "payment_intent.processing": "processing",
        "payment_intent.payment_failed": "requires_payment_method",
        "payment_intent.canceled": "canceled",
    }[event_type]
    intent = {
        "id": payment.provider_payment_id,
        "object": "payment_intent",
        "amount": payment.amount,
        "currency": payment.currency.lower(),
        "status": status,
        "metadata": {"payment_id": payment.id, "payment_request_id": payment.request_id},
        "latest_charge": {
            "id": "ch_test_1",
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
        },
        "last_payment_error": {"code": "card_declined", "message": "Declined"}
        if event_type == "payment_intent.payment_failed"
        else None,
    }
    account = changes.pop("account", None)
    intent.update(changes)
    event = {
        "id": event_id or f"evt_{payment.id}_{event_type}",
        "object": "event",
        "type": event_type,
        "data": {"object": intent},
    }
    if account:
        event["account"] = account
    return json.dumps(event).encode()
