"""``flask --app portal merchant user invite|list``: the first owner of a merchant."""

from __future__ import annotations

import click
import pyotp
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from portal.clitools import print_json
from portal.extensions import db
from portal.merchant_console import accounts
from portal.merchant_console.models import ROLES, MerchantUser
from portal.merchants.models import Merchant

user_cli = AppGroup("user", help="Merchant console accounts (owners and staff).")


@user_cli.command("invite")
@click.argument("merchant_id")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(ROLES), default="owner", show_default=True)
@click.option(
    "--locale", type=click.Choice(["en", "fr", "nl", "de"]), default="en", show_default=True
)
def user_invite(merchant_id: str, email: str, role: str, locale: str) -> None:
    """Invite a console user; the invitation is e-mailed and its link printed (it works
    once, for 7 days: the invited person chooses a password and, owners, sets up TOTP)."""
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise click.ClickException(f"no merchant {merchant_id}")
    try:
        user = accounts.invite_user(merchant, email, role, locale=locale)
    except accounts.AccountError as exc:
        raise click.ClickException(exc.code) from None
    db.session.commit()
    print_json({"id": user.id, "email": user.email, "role": user.role,
                "invitation_url": accounts.account_url(user, "invite")})  # fmt: skip


@user_cli.command("list")
@click.argument("merchant_id")
def user_list(merchant_id: str) -> None:
    """The merchant's console accounts (never a secret)."""
    users = db.session.scalars(
        select(MerchantUser).where(MerchantUser.merchant_id == merchant_id).order_by(
            MerchantUser.created_at)
    ).all()  # fmt: skip
    print_json([{"id": u.id, "email": u.email, "role": u.role, "active": u.active,
                 "totp": u.totp_secret is not None} for u in users])  # fmt: skip


@user_cli.command("code")
@click.argument("email")
def user_code(email: str) -> None:
    """Development only: the account's current TOTP code (for the demo owner)."""
    if current_app.config["PORTAL_ENV"] == "production":
        raise click.ClickException("codes come from the owner's authenticator app in production")
    user = db.session.scalars(
        select(MerchantUser).where(MerchantUser.email == email.strip().lower())
    ).first()
    if user is None or not user.totp_secret:
        raise click.ClickException(f"no account with TOTP for {email}")
    click.echo(pyotp.TOTP(user.totp_secret).now())
