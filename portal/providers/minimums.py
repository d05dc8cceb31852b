"""The smallest charge a payment provider accepts, per currency.

Stripe refuses a charge below its "minimum charge amount" (so that its fee
cannot exceed the payment); the amounts are not proportional between
currencies (0.30 GBP, 175.00 HUF), so they are carried here, in minor units,
as Stripe publishes them. A currency Stripe does not list falls back to 0.50
in major units (rounded up to what the currency can express). The sandbox
uses the same table, so what works in development works in production.
"""

from __future__ import annotations

from portal.money import precision

STRIPE_MINIMUM_CHARGE: dict[str, int] = {
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50,
    "CZK": 1500, "DKK": 250, "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500, "INR": 50,
    "JPY": 50, "MXN": 1000, "MYR": 200, "NOK": 300, "NZD": 50, "PLN": 200, "RON": 200,
    "SEK": 300, "SGD": 50, "THB": 1000,
}  # fmt: skip


def stripe_minimum_charge(currency: str) -> int:
    """Minor units: Stripe's published minimum, else 0.50 of the currency (at least 1)."""
    listed = STRIPE_MINIMUM_CHARGE.get(currency.upper())
    if listed is not None:
        return listed
    digits = precision(currency)
    return max(5 * 10 ** (digits - 1), 1) if digits else 1
