"""``flask --app portal merchant …`` and ``demo`` through Click's runner."""

from __future__ import annotations

import json

from portal.extensions import db
from portal.merchants.models import ApiKey, Merchant
from portal.payment_requests.models import PaymentRequest


def run(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result


def test_merchant_create_prints_id_and_key(app, client):
    result = run(app, "merchant", "create", "--name", "Bakkerij Peeters", "--currency", "EUR",
                 "--ceiling", "100000.00", "--locale", "nl")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["merchant_id"].startswith("mer_")
    m = db.session.get(Merchant, out["merchant_id"])
    assert m.ceiling == 10_000_000
    assert m.default_locale == "nl"
    # the key works, and only its hash is stored
    resp = client.get(
        "/api/v1/payment-requests", headers={"Authorization": f"Bearer {out['api_key']}"}
    )
    assert resp.status_code == 200
    stored = db.session.query(ApiKey).filter_by(merchant_id=m.id).one()
    assert out["api_key"] not in (stored.key_hash, stored.prefix)


def test_merchant_create_default_ceiling_and_errors(app):
    out = json.loads(run(app, "merchant", "create", "--name", "X", "--currency", "jpy").output)
    assert db.session.get(Merchant, out["merchant_id"]).ceiling == 10_000
    bad = run(app, "merchant", "create", "--name", "Y", "--currency", "XYZ")
    assert bad.exit_code != 0 and "unknown currency" in bad.output
    bad = run(app, "merchant", "create", "--name", "Y", "--currency", "JPY", "--ceiling", "10.5")
    assert bad.exit_code != 0 and "decimals" in bad.output


def test_merchant_create_with_its_own_minimum_payment(app):
    out = json.loads(run(app, "merchant", "create", "--name", "Club", "--currency", "EUR",
                         "--min-payment", "5.00").output)  # fmt: skip
    assert db.session.get(Merchant, out["merchant_id"]).min_payment == 500
    shown = json.loads(run(app, "merchant", "show", out["merchant_id"]).output)
    assert shown["min_payment"] == "5.00"
    for bad in ("0", "-1", "20000.00", "5.001"):
        result = run(app, "merchant", "create", "--name", "C", "--currency", "EUR",
                     "--min-payment", bad)  # fmt: skip
        assert result.exit_code != 0, bad


def test_keys_create_revoke_and_show(app, client):
    out = json.loads(run(app, "merchant", "create", "--name", "Z", "--currency", "EUR").output)
    mid = out["merchant_id"]
    new = json.loads(run(app, "merchant", "keys", "create", mid, "--label", "till 2").output)
    shown = json.loads(run(app, "merchant", "show", mid).output)
    assert shown["ceiling"] == "10000.00"
    assert [k["label"] for k in shown["api_keys"]] == ["created with the merchant", "till 2"]
    key_id = shown["api_keys"][1]["id"]
    assert run(app, "merchant", "keys", "revoke", key_id).exit_code == 0
    resp = client.get(
        "/api/v1/payment-requests", headers={"Authorization": f"Bearer {new['api_key']}"}
    )
    assert resp.status_code == 401
    assert run(app, "merchant", "keys", "revoke", "key_nope").exit_code != 0
    assert run(app, "merchant", "show", "mer_nope").exit_code != 0


def test_demo_is_idempotent(app, client):
    first = run(app, "demo")
    assert first.exit_code == 0, first.output
    second = run(app, "demo")
    assert second.exit_code == 0
    assert first.output == second.output
    assert db.session.query(Merchant).count() == 1
    assert db.session.query(PaymentRequest).count() == 3
    links = [line.split()[-1] for line in first.output.splitlines() if "/p/" in line]
    assert len(links) == 3
    for link in links:
        assert client.get(link[link.index("/p/") :]).status_code == 200
