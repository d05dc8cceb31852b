"""``flask --app portal staff create|totp``."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal.extensions import db
from portal.support.auth import StaffError, create_staff, enable_totp, totp_uri
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


@staff_cli.command("totp")
@click.argument("email")
def staff_totp(email: str) -> None:
    """Set up (or reset) TOTP for an account; prints the provisioning URI."""
    user = db.session.scalars(select(StaffUser).where(StaffUser.email == email.lower())).first()
    if user is None:
        raise click.ClickException(f"no staff account {email}")
    enable_totp(user)
    db.session.commit()
    click.echo(totp_uri(user))
