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

from portal.extensions import db
from tests.servers import free_port, serve_wsgi

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


@pytest.fixture
def stripe_portal(app, stripe_server):
    """The portal on a real port, using localstripe, with localstripe's webhooks pointed at it."""
    app.config.update(
        PORTAL_PAYMENT_PROVIDER="stripe",
        PORTAL_STRIPE_SECRET_KEY="sk_test_portal",
        PORTAL_STRIPE_PUBLISHABLE_KEY="pk_test_portal",
        PORTAL_STRIPE_API_BASE=stripe_server,
        PORTAL_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        PORTAL_STRIPE_PAYMENT_METHOD_TYPES=["card"],  # localstripe has no automatic methods
        PORTAL_STRIPE_JS_URL=f"{stripe_server}/js.stripe.com/v3/",
    )
    with serve_wsgi(app) as base:
        requests.post(
            f"{stripe_server}/_config/webhooks/portal",
            data={"url": f"{base}/webhooks/stripe", "secret": WEBHOOK_SECRET},
            timeout=5,
        )
        yield app


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if predicate():
            return True
        time.sleep(0.2)
    return False
