"""The Stripe checkout page loads only the scripts docs/security.md lists."""

from __future__ import annotations

from portal.extensions import db
from portal.links import link_token
from portal.payments.services import prepare_payment, start_payment
from tests.factories import make_request
from tests.functional.script_inventory import inventory, scripts_of


def test_stripe_checkout_loads_only_inventoried_scripts(stripe_portal, client, merchant):
    pr = make_request(merchant)
    payment = start_payment(pr, None)
    prepare_payment(payment)
    db.session.commit()
    resp = client.get(f"/p/{link_token(pr.id)}/checkout/{payment.id}")
    assert resp.status_code == 200
    scripts, blocks = inventory()
    found = scripts_of(resp.text, stripe_portal.config["PORTAL_STRIPE_JS_URL"])
    assert set(found) == {"STRIPE_JS_URL", "/static/js/stripe-pay.js", "#stripe-config"}
    assert set(found) <= scripts | blocks
    csp = resp.headers["Content-Security-Policy"]
    assert "form-action 'self' https://hooks.stripe.com;" in csp
