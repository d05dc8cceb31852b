"""``flask --app portal staff create|list|disable|enable|reset-totp``."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal.extensions import db
from portal.support.auth import (
    StaffError,
    create_staff,
    enable_totp,
    find_staff,
    reset_totp,
    set_disabled,
    totp_uri,
)
from portal.support.models import StaffUser

staff_cli = AppGroup("staff", help="Support console accounts.")


@staff_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["support", "admin"]), default="support")
@click.option("--merchant", "merchants", multiple=True, help="Limit to these merchants.")
@click.option("--password", default=None, help="At least 12 characters (default: generated).")
@click.option("--totp", is_flag=True, help="Require a TOTP code (always on for admins).")
@click.option("--time-zone", default="Europe/Brussels", show_default=True)
def staff_create(
    email: str, role: str, merchants: tuple[str, ...], password: str | None, totp: bool,
    time_zone: str,
) -> None:  # fmt: skip
    """Create a staff account; prints the password and the TOTP setup URI once."""
    try:
        user, secret = create_staff(email, role, list(merchants), password)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    if totp and not user.totp_secret:
        enable_totp(user)
    user.time_zone = time_zone
    db.session.commit()
    click.echo(
        json.dumps(
            {
                "id": user.id,
                "email": user.email,
                "role": user.role,
                "merchants": user.merchant_ids or "all",
                "password": secret if not password else "(as given)",
                "totp_uri": totp_uri(user),
            },
            indent=2,
        )
    )


def _account(email: str) -> StaffUser:
    try:
        return find_staff(email)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None


@staff_cli.command("list")
def staff_list() -> None:
    """Every account, one JSON object a line: role, scope, TOTP, disabled or locked."""
    for user in db.session.scalars(select(StaffUser).order_by(StaffUser.email)):
        click.echo(
            json.dumps(
                {
                    "id": user.id,
                    "email": user.email,
                    "role": user.role,
                    "merchants": user.merchant_ids or "all",
                    "totp": bool(user.totp_secret),
                    "disabled": user.disabled_at.isoformat() if user.disabled_at else None,
                    "locked_until": user.locked_until.isoformat() if user.locked_until else None,
                }
            )
        )


@staff_cli.command("disable")
@click.argument("email")
def staff_disable(email: str) -> None:
    """Disable an account: no sign-in, and its open sessions end at once."""
    set_disabled(_account(email), True)
    db.session.commit()
    click.echo(f"{email} disabled")


@staff_cli.command("enable")
@click.argument("email")
def staff_enable(email: str) -> None:
    """Enable a disabled account again (and lift a lockout)."""
    set_disabled(_account(email), False)
    db.session.commit()
    click.echo(f"{email} enabled")


@staff_cli.command("reset-totp")
@click.argument("email")
def staff_reset_totp(email: str) -> None:
    """A new TOTP secret (a lost phone): ends the sessions, prints the provisioning URI."""
    uri = reset_totp(_account(email))
    db.session.commit()
    click.echo(uri)


@staff_cli.command("totp", hidden=True)
@click.argument("email")
def staff_totp(email: str) -> None:
    """Older name of ``reset-totp``."""
    staff_reset_totp.callback(email)  # type: ignore[misc]
