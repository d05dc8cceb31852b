"""How a payment method reads on a receipt: words, never a code like ``sepa_debit``."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

CARD_BRANDS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "maestro": "Maestro",
    "bancontact": "Bancontact",
    "cartes_bancaires": "Cartes Bancaires",
    "discover": "Discover",
    "diners": "Diners Club",
    "jcb": "JCB",
    "unionpay": "UnionPay",
}
# Names of payment methods (brands, not translated); the others are worded below.
METHOD_NAMES = {
    "ideal": "iDEAL",
    "bancontact": "Bancontact",
    "eps": "EPS",
    "giropay": "giropay",
    "sofort": "Sofort",
    "p24": "Przelewy24",
    "klarna": "Klarna",
    "paypal": "PayPal",
    "link": "Link",
    "twint": "TWINT",
    "blik": "BLIK",
    "revolut_pay": "Revolut Pay",
}


def _worded(method_type: str) -> str | None:
    return {
        "sepa_debit": _("SEPA Direct Debit"),
        "card": _("Card"),
        "bank_transfer": _("Bank transfer"),
        "customer_balance": _("Bank transfer"),
    }.get(method_type)


def method_label(payment: Any, dots: str = "••••") -> str:
    """``Visa •••• 4242``, ``SEPA Direct Debit``, ``iDEAL``… in the current locale."""
    if payment.card_last4:
        brand = CARD_BRANDS.get((payment.card_brand or "").lower()) or _("Card")
        return f"{brand} {dots} {payment.card_last4}"
    kind = (payment.method_type or "").lower()
    if not kind:
        return "—"
    return METHOD_NAMES.get(kind) or _worded(kind) or kind.replace("_", " ").capitalize()
