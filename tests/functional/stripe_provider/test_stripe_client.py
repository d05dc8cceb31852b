"""One configured Stripe client: reused, a timeout below the web timeout, bounded retries,
measured against a port that accepts connections and never answers."""

from __future__ import annotations

import re

import pytest

from portal.config import ROOT
from portal.extensions import db
from portal.payments.services import start_payment
from portal.providers.base import ProviderError, get_provider
from portal.providers.stripe import STRIPE_RETRIES, client
from tests.factories import make_request
from tests.functional.outages.test_stripe_down import blackhole
from tests.servers import wait_until


def test_one_client_per_configuration(app):
    app.config.update(PORTAL_STRIPE_SECRET_KEY="sk_test_one", PORTAL_STRIPE_API_BASE="")
    assert client() is client()
    app.config["PORTAL_STRIPE_TIMEOUT"] = 2.0
    assert client() is not None and client() is client()


def test_the_default_timeout_is_below_the_web_timeout(app):
    # Read, not run: gunicorn.conf.py sets up the process (PROMETHEUS_MULTIPROC_DIR…).
    conf = (ROOT / "gunicorn.conf.py").read_text()
    web_timeout = int(re.search(r'"WEB_TIMEOUT", "(\d+)"', conf).group(1))
    per_try = app.config["PORTAL_STRIPE_TIMEOUT"]
    assert per_try * (1 + STRIPE_RETRIES) + 5 < web_timeout  # 5 s: the SDK's longest back-off


def test_a_stripe_that_never_answers_costs_one_retry_then_a_provider_error(app, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None)
    payment.provider, payment.provider_payment_id = "stripe", "pi_never"
    db.session.commit()
    with blackhole() as stripe:
        app.config.update(
            PORTAL_STRIPE_SECRET_KEY="sk_test_blackhole", PORTAL_STRIPE_API_BASE=stripe.url,
            PORTAL_STRIPE_TIMEOUT=0.3,
        )  # fmt: skip
        with pytest.raises(ProviderError):
            get_provider("stripe").refund(payment, 100, idempotency_key="portal-refund-test")
        assert wait_until(lambda: len(stripe.connections) >= 1 + STRIPE_RETRIES, 10)
        assert len(stripe.connections) == 1 + STRIPE_RETRIES
