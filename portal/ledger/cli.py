"""``flask --app portal merchant endpoint add|list|rotate-secret|disable``."""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal.clitools import print_json
from portal.db_types import isoformat
from portal.errors import ApiError
from portal.extensions import db
from portal.ledger.callbacks import add_endpoint, rotate_secret
from portal.ledger.models import CallbackEndpoint
from portal.merchants.models import Merchant

endpoint_cli = AppGroup("endpoint", help="Callback endpoints of a merchant's ledger.")


def _endpoint(endpoint_id: str) -> CallbackEndpoint:
    endpoint = db.session.get(CallbackEndpoint, endpoint_id)
    if endpoint is None:
        raise click.ClickException(f"no endpoint {endpoint_id}")
    return endpoint


@endpoint_cli.command("add")
@click.argument("merchant_id")
@click.argument("url")
@click.option("--event", "events", multiple=True, help="Only these event types (repeatable).")
def endpoint_add(merchant_id: str, url: str, events: tuple[str, ...]) -> None:
    """Add an endpoint; prints its id and its whsec_ secret (shown once)."""
    if db.session.get(Merchant, merchant_id) is None:
        raise click.ClickException(f"no merchant {merchant_id}")
    try:
        endpoint = add_endpoint(merchant_id, url, list(events))
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    db.session.commit()
    print_json({"id": endpoint.id, "url": endpoint.url, "secret": endpoint.secret})


@endpoint_cli.command("list")
@click.argument("merchant_id")
def endpoint_list(merchant_id: str) -> None:
    """List a merchant's endpoints (never their secrets)."""
    rows = db.session.scalars(
        select(CallbackEndpoint)
        .where(CallbackEndpoint.merchant_id == merchant_id)
        .order_by(CallbackEndpoint.created_at)
    )
    print_json(
        [
            {
                "id": e.id,
                "url": e.url,
                "enabled": e.enabled,
                "disabled_reason": e.disabled_reason,
                "event_types": e.event_types or "all",
                "rotation_overlap_until": isoformat(e.previous_secret_expires_at),
            }
            for e in rows
        ]
    )


@endpoint_cli.command("rotate-secret")
@click.argument("endpoint_id")
@click.option("--overlap-hours", default=24, show_default=True, type=int)
def endpoint_rotate(endpoint_id: str, overlap_hours: int) -> None:
    """New secret; both sign until the overlap ends. Prints the new secret (shown once)."""
    endpoint = _endpoint(endpoint_id)
    secret = rotate_secret(endpoint, timedelta(hours=overlap_hours))
    db.session.commit()
    print_json(
        {
            "id": endpoint.id,
            "secret": secret,
            "old_secret_valid_until": isoformat(endpoint.previous_secret_expires_at),
        }
    )


@endpoint_cli.command("disable")
@click.argument("endpoint_id")
def endpoint_disable(endpoint_id: str) -> None:
    """Stop sending to an endpoint (events stay available through the pull API)."""
    endpoint = _endpoint(endpoint_id)
    endpoint.enabled = False
    endpoint.disabled_reason = "disabled by the merchant"
    db.session.commit()
    print_json({"id": endpoint.id, "enabled": False})


@endpoint_cli.command("enable")
@click.argument("endpoint_id")
def endpoint_enable(endpoint_id: str) -> None:
    """Send to an endpoint again."""
    endpoint = _endpoint(endpoint_id)
    endpoint.enabled = True
    endpoint.disabled_reason = None
    db.session.commit()
    print_json({"id": endpoint.id, "enabled": True})
