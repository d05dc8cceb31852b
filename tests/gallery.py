"""Every customer page in every state, made through the portal's own HTTP surfaces
(the API, the pay form, the sandbox's card and 3-D Secure pages): for the
accessibility check (tests/e2e/test_accessibility.py) and scripts/screenshots.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import update

from portal.db_types import utcnow
from portal.extensions import db
from portal.links import form_token, link_token
from portal.merchants.models import Merchant
from portal.payment_requests.models import PaymentRequest
from portal.payments.models import Payment
from portal.reminders.optouts import unsubscribe_token
from tests.factories import deposit_body, make_merchant, make_request, statement_body, wallet_body

LOCALES = ("en", "fr", "nl", "de")


@dataclass
class Shot:
    """One page: its name, its path, what to do on it before looking (a form to send)."""

    name: str
    path: str
    steps: Callable[[Any], None] | None = field(default=None, repr=False)


def _token(pr_id: str) -> str:
    return link_token(pr_id)


def _start(client, pr_id: str, **form: str) -> str:
    """The pay form sent: the checkout page's path."""
    resp = client.post(f"/p/{_token(pr_id)}/pay", data={"csrf_token": form_token(pr_id), **form})
    assert resp.status_code == 303, resp.status_code
    return resp.headers["Location"]


def _card(client, pr_id: str, card: str, **form: str) -> str:
    """Pay form and card form sent: the path the sandbox sends the customer to."""
    checkout = _start(client, pr_id, **form)
    resp = client.post(checkout, data={"csrf_token": form_token(pr_id), "card_number": card,
                                       "expiry": "12/39", "cvc": "123"})  # fmt: skip
    return resp.headers["Location"]


def _request(merchant, body: dict[str, Any], locale: str, reference: str) -> str:
    body = {**body, "reference": reference}
    body["customer"] = {**body["customer"], "locale": locale}
    return make_request(merchant, body).id


def _statement_lines() -> list[dict[str, Any]]:
    lines = [
        {"date": f"2026-10-{day:02d}", "description": f"Groceries {day}", "amount": 1250,
         "reference": f"T{day:03d}"}
        for day in range(1, 13)
    ]  # fmt: skip
    lines.append({"date": "2026-10-28", "description": "Credit note", "amount": -1500})
    return lines


def _fill_error(page) -> None:
    page.locator("#amount").fill("2 x 10")
    page.locator("form button.primary").click()
    page.wait_for_selector("#pay-error")


def _stop_reminders(page) -> None:
    with page.expect_navigation():
        page.locator("form button").click()
    assert page.locator("form button").count() == 0  # the confirmation, not the question


def _open_menu(page) -> None:
    page.locator("details.languages summary").click()


def build(app: Flask, locale: str) -> list[Shot]:
    """Make the rows (in ``app``'s database) and list the pages, all in ``locale``."""
    client = app.test_client()
    with app.app_context():
        shop = make_merchant(name=f"Corner Shop {locale.upper()}")
        merchant = db.session.get(Merchant, shop.id)
        merchant.support_email, merchant.support_phone = "help@corner.example", "+32 2 555 01 00"
        merchant.legal_details = "Corner Shop SRL · Rue Haute 1, 1000 Bruxelles · BE 0123.456.789"
        db.session.commit()
        long = statement_body(amount=13500, due_date="2026-12-31", allow_partial=True)
        long["statement"].update(lines=_statement_lines(), balance=13500)
        ids = {
            "statement": _request(shop, long, locale, "S-OPEN"),
            "overdue": _request(shop, statement_body(due_date="2026-10-31"), locale, "S-LATE"),
            "partial": _request(shop, statement_body(allow_partial=True), locale, "S-PART"),
            "paid": _request(shop, statement_body(), locale, "S-PAID"),
            "refunded": _request(shop, statement_body(), locale, "S-REF"),
            "void": _request(shop, statement_body(), locale, "S-VOID"),
            "expired": _request(shop, statement_body(), locale, "S-EXP"),
            "wallet": _request(shop, wallet_body(), locale, "W-OPEN"),
            "deposit": _request(shop, deposit_body(allow_full_payment=True), locale, "D-OPEN"),
            "declined": _request(shop, statement_body(), locale, "S-DECL"),
            "3ds": _request(shop, statement_body(), locale, "S-3DS"),
        }
        headers = shop.headers
        shots = _pages(client, ids, headers, locale)
        # a reminder's unsubscribe link (e-mail and SMS), before and after the click
        for channel, address in (("email", "jan@example.com"), ("sms", "+32470112233")):
            path = f"/u/{unsubscribe_token(shop.id, channel, address)}?lang={locale}"
            shots.append(Shot(f"unsubscribe-{channel}", path))
        shots.append(Shot("unsubscribe-done", path, _stop_reminders))
        return shots


def _pages(client, ids: dict[str, str], headers: dict[str, str], locale: str) -> list[Shot]:
    shots = [
        Shot("statement", f"/p/{_token(ids['statement'])}"),
        Shot("statement-language-menu", f"/p/{_token(ids['statement'])}", _open_menu),
        Shot("statement-overdue", f"/p/{_token(ids['overdue'])}"),
        Shot("wallet", f"/p/{_token(ids['wallet'])}"),
        Shot("wallet-amount-error", f"/p/{_token(ids['wallet'])}", _fill_error),
        Shot("deposit", f"/p/{_token(ids['deposit'])}"),
    ]
    # the link e-mail (the receipts and the refund notice follow from the payments)
    client.post(f"/api/v1/payment-requests/{ids['statement']}/send", json={"channel": "email"},
                headers=headers)  # fmt: skip
    checkout = _start(client, ids["statement"], amount="50,00" if locale != "en" else "50.00")
    shots.append(Shot("checkout", checkout))
    three_ds = _card(client, ids["3ds"], "4000 0027 6000 3184")
    shots.append(Shot("three-d-secure", three_ds))
    declined = _card(client, ids["declined"], "4000 0000 0000 0002")
    shots.append(Shot("result-declined", declined))
    partial = _card(client, ids["partial"], "4242 4242 4242 4242",
                    amount="50,00" if locale != "en" else "50.00")  # fmt: skip
    shots.append(Shot("statement-partly-paid", f"/p/{_token(ids['partial'])}"))
    paid = _card(client, ids["paid"], "4242 4242 4242 4242")
    shots.append(Shot("result-paid", paid))
    shots.append(Shot("statement-paid", f"/p/{_token(ids['paid'])}"))
    payment = db.session.query(Payment).filter_by(request_id=ids["paid"]).one()
    shots.append(Shot("receipt", f"/p/{_token(ids['paid'])}/receipt/{payment.id}"))
    _card(client, ids["refunded"], "4242 4242 4242 4242")
    refunded = db.session.query(Payment).filter_by(request_id=ids["refunded"]).one()
    client.post(f"/api/v1/payments/{refunded.id}/refunds", json={}, headers=headers)
    shots.append(Shot("statement-refunded", f"/p/{_token(ids['refunded'])}"))
    shots.append(Shot("receipt-refunded", f"/p/{_token(ids['refunded'])}/receipt/{refunded.id}"))
    client.post(f"/api/v1/payment-requests/{ids['void']}/void", headers=headers)
    shots.append(Shot("void", f"/p/{_token(ids['void'])}"))
    db.session.execute(
        update(PaymentRequest).where(PaymentRequest.id == ids["expired"])
        .values(expires_at=utcnow() - timedelta(days=1))
    )  # fmt: skip
    db.session.commit()
    shots.append(Shot("expired", f"/p/{_token(ids['expired'])}"))
    shots.append(Shot("partial-result", partial))
    shots.append(Shot("not-found", f"/p/unknown-link?lang={locale}"))
    return shots
