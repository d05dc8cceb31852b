"""``flask --app portal …`` commands: merchants and keys, the demo data."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from portal.clitools import print_json
from portal.demo import DEMO_LEDGER_SECRET, ensure_demo, ensure_demo_ledger
from portal.errors import ApiError
from portal.extensions import db
from portal.jobs.cli import worker_command
from portal.ledger.cli import endpoint_cli
from portal.merchant_console.cli import user_cli
from portal.merchants.models import ApiKey, Merchant
from portal.merchants.services import (
    MerchantError,
    create_api_key,
    create_merchant,
    normalise_origin,
    revoke_api_key,
)
from portal.money import to_major
from portal.payments.services import register_wallet_domains
from portal.support.cli import staff_cli

merchant_cli = AppGroup("merchant", help="Create and inspect merchants.")
keys_cli = AppGroup("keys", help="Create and revoke API keys.")
merchant_cli.add_command(keys_cli)


def _get_merchant(merchant_id: str) -> Merchant:
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise click.ClickException(f"no merchant {merchant_id}")
    return merchant


@merchant_cli.command("create")
@click.option("--name", required=True)
@click.option("--currency", required=True, help="ISO 4217 code, e.g. EUR.")
@click.option("--ceiling", default=None, help="Largest amount, in major units (10000.00).")
@click.option("--locale", default="en", type=click.Choice(["en", "fr", "nl", "de"]))
@click.option("--display-name", default=None)
@click.option("--support-email", default=None)
@click.option(
    "--min-payment",
    default=None,
    help="Smallest partial or chosen amount, in major units (the provider's minimum if lower).",
)
@click.option(
    "--country", default="BE", show_default=True,
    help="ISO 3166-1 alpha-2: how dates read and phone numbers typed the national way.",
)  # fmt: skip
@click.option("--time-zone", default="Europe/Brussels", show_default=True)
@click.option("--legal-details", default=None, help="Printed on PDFs: legal name, address, VAT.")
def merchant_create(
    name: str,
    currency: str,
    ceiling: str | None,
    locale: str,
    display_name: str | None,
    support_email: str | None,
    min_payment: str | None,
    country: str,
    time_zone: str,
    legal_details: str | None,
) -> None:
    """Create a merchant and print its id and a new API key (shown once)."""
    try:
        merchant = create_merchant(
            name,
            currency,
            ceiling=ceiling,
            default_ceiling=current_app.config["PORTAL_DEFAULT_CEILING"],
            locale=locale,
            display_name=display_name,
            support_email=support_email,
            min_payment=min_payment,
            country=country,
            time_zone=time_zone,
            legal_details=legal_details,
        )
    except MerchantError as exc:
        raise click.ClickException(str(exc)) from None
    secret = create_api_key(merchant, label="created with the merchant")
    db.session.commit()
    print_json({"merchant_id": merchant.id, "api_key": secret})


@merchant_cli.command("show")
@click.argument("merchant_id")
def merchant_show(merchant_id: str) -> None:
    """Show a merchant's settings and keys (never the secrets)."""
    m = _get_merchant(merchant_id)
    keys = db.session.query(ApiKey).filter_by(merchant_id=m.id).order_by(ApiKey.created_at).all()
    print_json(
        {
            "id": m.id,
            "name": m.name,
            "display_name": m.display_name,
            "currency": m.currency,
            "ceiling": str(to_major(m.ceiling, m.currency)),
            "min_payment": str(to_major(m.min_payment, m.currency)) if m.min_payment else None,
            "default_locale": m.default_locale,
            "support_email": m.support_email,
            "embed_origins": m.embed_origins,
            "stripe_account": m.stripe_account,
            "api_keys": [
                {
                    "id": k.id,
                    "prefix": k.prefix,
                    "label": k.label,
                    "created_at": k.created_at.isoformat(),
                    "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                    "revoked": k.revoked_at is not None,
                }
                for k in keys
            ],
        }
    )


@merchant_cli.command("embed-origins")
@click.argument("merchant_id")
@click.argument("origins", nargs=-1)
def merchant_embed_origins(merchant_id: str, origins: tuple[str, ...]) -> None:
    """Set the https origins allowed to frame the merchant's pages (none given: nobody)."""

    merchant = _get_merchant(merchant_id)
    try:
        merchant.embed_origins = [normalise_origin(o) for o in origins]
    except MerchantError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    print_json({"id": merchant.id, "embed_origins": merchant.embed_origins})


@keys_cli.command("create")
@click.argument("merchant_id")
@click.option("--label", default=None)
def keys_create(merchant_id: str, label: str | None) -> None:
    """Create a new API key for a merchant (shown once)."""
    secret = create_api_key(_get_merchant(merchant_id), label=label)
    db.session.commit()
    print_json({"merchant_id": merchant_id, "api_key": secret})


@keys_cli.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key by its id (key_…): it stops working at once."""
    key = revoke_api_key(key_id)
    if key is None:
        raise click.ClickException(f"no API key {key_id}")
    db.session.commit()
    print_json({"id": key.id, "revoked": True})


KIND_NAMES = {"statement": "statement", "wallet_topup": "wallet top-up",
              "order_deposit": "order deposit"}  # fmt: skip


@click.command("demo")
@click.option(
    "--ledger",
    "ledger_url",
    metavar="URL",
    help="Also send the demo merchant's callbacks to URL (examples/ledger_receiver.py), "
    "signed with the demo ledger secret.",
)
def demo_command(ledger_url: str | None) -> None:
    """Create the demo merchant, its API key and one open link of each kind, or reuse
    them; a link that was paid, voided or expired gets a fresh one. Prints them."""

    if current_app.config["PORTAL_ENV"] == "production":
        raise click.ClickException("the demo data is for development only")
    info = ensure_demo()
    db.session.commit()
    base = current_app.config["PORTAL_BASE_URL"]
    click.echo("")
    click.echo(f"Demo merchant: {info['merchant_name']} ({info['merchant_id']})")
    click.echo(f"Demo API key:  {info['api_key']}")
    for kind, url in info["links"].items():
        click.echo(f"{kind:<15} {url}")
    for kind in info["replaced"]:
        click.echo(f"(a new {KIND_NAMES[kind]} link: the previous one was paid, voided or expired)")
    owner = info["owner"]
    click.echo(f"Console:       {base}/merchant/  as {owner['email']} / {owner['password']}")
    click.echo(f"  TOTP key {owner['totp_secret']} (add it to an authenticator app), or print")
    click.echo(
        "  the current code: .venv/bin/flask --app portal merchant user code " + owner["email"]
    )
    click.echo(f"Start page:    {base}/  (mail, SMS, API reference, test cards, console)")
    if ledger_url:
        try:
            endpoint = ensure_demo_ledger(ledger_url)
        except ApiError as exc:
            hint = ""
            if exc.code == "unsafe_url":
                hint = " (for a receiver on this machine: export PORTAL_ALLOW_PRIVATE_CALLBACKS=1)"
            raise click.ClickException(exc.message + hint) from None
        db.session.commit()
        port = urlsplit(ledger_url).port or 8765
        click.echo(f"Ledger:        {endpoint.id} {endpoint.url}")
        click.echo("Start the example receiver for it:")
        click.echo(
            f"  .venv/bin/python examples/ledger_receiver.py --port {port} "
            f"--secret {DEMO_LEDGER_SECRET}"
        )
    click.echo("")
    sys.stdout.flush()


@click.command("wallet-domains")
@click.option("--domain", default=None, help="The portal's host (default: PORTAL_BASE_URL's).")
def wallet_domains_command(domain: str | None) -> None:
    """Register the portal's domain for Apple Pay and Google Pay with the payment provider,
    on the platform and on every connected account (run again after adding one)."""
    host = domain or urlsplit(current_app.config["PORTAL_BASE_URL"]).hostname or ""
    registered = register_wallet_domains(host)
    print_json({"domain": host, "registered": [
        {"account": account, "id": domain_id} for account, domain_id in registered
    ]})  # fmt: skip


def register_cli(app: Flask) -> None:
    merchant_cli.add_command(endpoint_cli)
    app.cli.add_command(wallet_domains_command)
    merchant_cli.add_command(user_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(staff_cli)
    app.cli.add_command(merchant_cli)
    app.cli.add_command(demo_command)
