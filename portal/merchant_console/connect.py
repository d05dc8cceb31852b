"""The shop's own Stripe account (Stripe Connect), set up by its owner: the provider's
onboarding link, the account's status, and the portal's wallets domain registered on the
connected account once onboarding is done. Audited; services add and flush."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from portal.errors import ApiError
from portal.extensions import db
from portal.merchant_console.accounts import audit
from portal.merchant_console.models import MerchantUser
from portal.providers.base import AccountStatus, ProviderError, get_provider


class ProviderUnavailable(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(502, "provider_error", message)


def status_of(user: MerchantUser) -> AccountStatus | None:
    """The account's status, or None when the provider does not answer."""
    try:
        return get_provider().account_status(user.merchant)
    except ProviderError:
        return None


def start_onboarding(user: MerchantUser, return_url: str, refresh_url: str) -> str:
    """The provider's onboarding link. An account the provider created is kept (and
    audited) even when the link itself could not be had: the next try reuses it."""
    merchant = user.merchant
    before = merchant.stripe_account_pending
    try:
        url = get_provider().onboarding_link(merchant, return_url, refresh_url)
    except ProviderError as exc:
        raise ProviderUnavailable(str(exc)) from exc
    finally:
        if merchant.stripe_account_pending != before:
            audit(user, "connect.account_created", merchant.id,
                  account=merchant.stripe_account_pending)  # fmt: skip
    account = merchant.stripe_account or merchant.stripe_account_pending
    audit(user, "connect.onboarding_started", merchant.id, account=account)
    return url


def _promote(user: MerchantUser, status: AccountStatus) -> None:
    """A pending account whose charges are enabled takes the shop's payments from now on."""
    merchant = user.merchant
    pending = merchant.stripe_account_pending
    if pending and status.charges_enabled and status.account == pending:
        previous = merchant.stripe_account
        merchant.stripe_account, merchant.stripe_account_pending = status.account, None
        db.session.flush()
        audit(user, "connect.account_live", merchant.id, account=status.account,
              previous=previous)  # fmt: skip


def finish_onboarding(user: MerchantUser) -> AccountStatus | None:
    """The owner is back from the provider: the account's status, and, once its details
    are in, the portal's domain registered for wallets on the connected account."""
    status = status_of(user)
    if status is not None:
        _promote(user, status)
    domain_id = None
    if status is not None and status.account and status.details_submitted:
        host = urlsplit(current_app.config["PORTAL_BASE_URL"]).hostname or ""
        try:
            domain_id = get_provider().register_domain(host, status.account)
        except ProviderError:
            domain_id = None  # `flask wallet-domains` registers it again later
    details: dict[str, Any] = {"answered": status is not None, "wallet_domain": domain_id}
    if status is not None:
        details |= {
            "account": status.account,
            "charges_enabled": status.charges_enabled,
            "payouts_enabled": status.payouts_enabled,
            "requirements_due": status.requirements_due,
        }
    audit(user, "connect.onboarding_returned", user.merchant_id, **details)
    return status
