"""The console's payment-request forms, read into the API's own body.

What a person typed (amounts in the shop's way of writing them, lines as rows or pasted
CSV) becomes the JSON object ``POST /api/v1/payment-requests`` takes; the same pydantic
models (:mod:`portal.api.schemas`) and the same service then decide, so ceiling,
minimums and expiry are the API's. Only what cannot be read at all (an amount that is
not one, a CSV row without its columns) is refused here, as :class:`FormError`.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from werkzeug.datastructures import MultiDict

from portal.api.schemas import normalise_phone
from portal.customer.forms import parse_amount

KINDS = ("statement", "wallet_topup", "order_deposit")
MAX_ROWS = 500


class FormError(ValueError):
    def __init__(self, code: str, field: str) -> None:
        super().__init__(code)
        self.code, self.field = code, field


class Reader:
    def __init__(
        self, form: MultiDict[str, str], currency: str, locale: str, country: str = "BE"
    ) -> None:
        self.form, self.currency, self.locale, self.country = form, currency, locale, country

    def text(self, name: str) -> str | None:
        value = (self.form.get(name) or "").strip()
        return value or None

    def amount(self, name: str, text: str | None = None, *, signed: bool = False) -> int | None:
        """Minor units from what was typed (None when nothing was)."""
        raw = self.text(name) if text is None else text.strip()
        if not raw:
            return None
        negative = signed and raw.startswith("-")
        value = parse_amount(raw.lstrip("-") if negative else raw, self.currency, self.locale)
        if value is None:
            raise FormError("invalid_amount", name)
        return -value if negative else value

    def day(self, name: str, text: str | None = None) -> str | None:
        raw = self.text(name) if text is None else text.strip()
        if not raw:
            return None
        for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
            try:
                return datetime.strptime(raw, pattern).date().isoformat()
            except ValueError:
                continue
        raise FormError("invalid_date", name)

    def checked(self, name: str) -> bool:
        return self.form.get(name) in ("1", "on", "yes", "true")


def _customer(r: Reader) -> dict[str, Any] | None:
    customer = {
        "name": r.text("customer_name"),
        "email": r.text("customer_email"),
        "phone": national_phone(r.text("customer_phone"), r.country),
        "locale": r.text("customer_locale"),
        "reference": r.text("customer_reference"),
    }
    customer = {k: v for k, v in customer.items() if v is not None}
    return customer or None


def _statement_rows(r: Reader) -> list[dict[str, Any]]:
    dates, descriptions = r.form.getlist("line_date"), r.form.getlist("line_description")
    amounts, refs = r.form.getlist("line_amount"), r.form.getlist("line_reference")
    lines = []
    for i, description in enumerate(descriptions[:MAX_ROWS]):
        amount_text = amounts[i] if i < len(amounts) else ""
        if not description.strip() and not amount_text.strip():
            continue  # an empty row
        line = {
            "date": r.day("line_date", dates[i] if i < len(dates) else ""),
            "description": description.strip(),
            "amount": r.amount("line_amount", amount_text, signed=True),
            "reference": (refs[i] if i < len(refs) else "").strip() or None,
        }
        if line["amount"] is None:
            raise FormError("invalid_amount", "line_amount")
        lines.append({k: v for k, v in line.items() if v is not None})
    return lines


def _csv_rows(r: Reader) -> list[dict[str, Any]]:
    """Pasted CSV: date, description, amount[, reference] per row; ``;`` or a tab between
    columns (a comma too when no row has the other two); a header row is skipped."""
    pasted = (r.form.get("lines_csv") or "").strip()
    if not pasted:
        return []
    delimiter = ";" if ";" in pasted else "\t" if "\t" in pasted else ","
    lines: list[dict[str, Any]] = []
    for row in list(csv.reader(io.StringIO(pasted), delimiter=delimiter))[: MAX_ROWS + 1]:
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if len(cells) < 3:
            raise FormError("invalid_csv", "lines_csv")
        if not lines and not any(ch.isdigit() for ch in cells[2]):
            continue  # the header
        try:
            line = {
                "date": r.day("lines_csv", cells[0]),
                "description": cells[1],
                "amount": r.amount("lines_csv", cells[2], signed=True),
                "reference": cells[3] if len(cells) > 3 and cells[3] else None,
            }
        except FormError:
            raise FormError("invalid_csv", "lines_csv") from None
        lines.append({k: v for k, v in line.items() if v is not None})
    return lines


def _order_rows(r: Reader) -> list[dict[str, Any]]:
    descriptions, quantities = r.form.getlist("line_description"), r.form.getlist("line_quantity")
    units = r.form.getlist("line_unit_amount")
    lines = []
    for i, description in enumerate(descriptions[:MAX_ROWS]):
        unit_text = units[i] if i < len(units) else ""
        if not description.strip() and not unit_text.strip():
            continue
        quantity_text = (quantities[i] if i < len(quantities) else "").strip() or "1"
        if not quantity_text.isdigit():
            raise FormError("invalid_quantity", "line_quantity")
        unit = r.amount("line_unit_amount", unit_text)
        if unit is None:
            raise FormError("invalid_amount", "line_unit_amount")
        lines.append(
            {
                "description": description.strip(),
                "quantity": int(quantity_text),
                "unit_amount": unit,
            }
        )
    return lines


def _per_kind(r: Reader, kind: str, body: dict[str, Any]) -> None:
    if kind == "statement":
        body["allow_partial"] = r.checked("allow_partial")
        body["statement"] = {
            "period_start": r.day("period_start"),
            "period_end": r.day("period_end"),
            "balance": r.amount("balance", signed=True),
            "lines": _statement_rows(r) + _csv_rows(r),
        }
    elif kind == "wallet_topup":
        body["reusable"] = r.checked("reusable")
        if r.form.get("wallet_mode") == "chosen":
            body["amount"] = None
            suggested = [r.amount("suggested", text) for text in r.form.getlist("suggested")]
            body["wallet"] = {
                "min_amount": r.amount("min_amount"),
                "max_amount": r.amount("max_amount"),
                "suggested": [s for s in suggested if s is not None],
            }
    else:
        body["allow_full_payment"] = r.checked("allow_full_payment")
        body["order"] = {
            "reference": r.text("order_reference"),
            "total": r.amount("total"),
            "lines": _order_rows(r),
        }


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v is not None}
    return value


def national_phone(phone: str | None, country: str) -> str | None:
    """A number typed without its country code, read with the shop's country (E.164);
    anything else is left for the contract to judge."""
    if not phone or phone.startswith("+"):
        return phone
    try:
        return normalise_phone(phone, country)
    except ValueError:
        return phone


def request_body(
    form: MultiDict[str, str], kind: str, currency: str, locale: str, country: str = "BE"
) -> dict[str, Any]:
    """The API's body for the form of ``kind`` (:class:`FormError` when unreadable)."""
    if kind not in KINDS:
        raise FormError("invalid_kind", "kind")
    r = Reader(form, currency, locale, country)
    body: dict[str, Any] = {
        "kind": kind,
        "currency": currency,
        "amount": r.amount("amount"),
        "reference": r.text("reference"),
        "description": r.text("description"),
        "customer": _customer(r),
        "due_date": r.day("due_date"),
    }
    _per_kind(r, kind, body)
    return _drop_empty(body)
