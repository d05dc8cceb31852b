"""Which statement lines a payment settles ("lettrage"), and what a refund undoes.

The rule, documented for ledgers in docs/callbacks.md:

1. Lines are taken oldest first: by date, then in the order the merchant sent
   them; lines without a date come after the dated ones, in that order.
2. Credit lines (negative amounts) are netted first: a payment first matches
   the open credits against the oldest open debits, then spends its money on
   the oldest debits still open. A netted credit is settled.
3. A refund first gives back what of its payment no line took (money beyond
   the lines, when they do not add up to the amount paid), then undoes the
   payment's debit shares, the most recently settled line first. Credits
   netted stay netted (a credit note matched against an invoice does not come
   back because money went back).

Everything here is arithmetic on plain values; the caller holds the request's
lock, writes the shares and keeps each line's ``amount_settled``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class LineState:
    """One statement line as it stands before the payment or refund."""

    id: int
    position: int
    date: date | None
    reference: str | None
    amount: int  # debits > 0, credits < 0
    settled: int  # what is settled so far: 0..amount (same sign as amount)

    @property
    def open(self) -> int:
        return self.amount - self.settled


@dataclass(frozen=True)
class Share:
    """What one payment (or refund) does to one line."""

    line_id: int
    position: int
    reference: str | None
    amount: int  # signed: a payment settles (+ debit, - credit), a refund reverses (-)
    line_amount: int
    settled_after: int

    @property
    def settled(self) -> bool:
        return self.settled_after == self.line_amount

    @property
    def remaining(self) -> int:
        return self.line_amount - self.settled_after

    def as_json(self) -> dict[str, object]:
        return {
            "position": self.position,
            "reference": self.reference,
            "amount": self.amount,
            "settled": self.settled,
            "remaining": self.remaining,
        }


def oldest_first(lines: Iterable[LineState]) -> list[LineState]:
    return sorted(lines, key=lambda ln: (ln.date is None, ln.date or date.min, ln.position))


def _share(line: LineState, amount: int) -> Share:
    return Share(line.id, line.position, line.reference, amount, line.amount, line.settled + amount)


def allocate_payment(lines: Iterable[LineState], amount: int) -> tuple[list[Share], int]:
    """The shares of a payment of ``amount``, and what no line could take (unallocated)."""
    ordered = oldest_first(lines)
    debits = [ln for ln in ordered if ln.amount > 0 and ln.open > 0]
    credits = [ln for ln in ordered if ln.amount < 0 and ln.open < 0]
    debit_open = sum(ln.open for ln in debits)
    netted = min(-sum(ln.open for ln in credits), debit_open)
    money = min(amount, debit_open - netted)
    takes: dict[int, int] = {}
    left = netted
    for line in credits:
        take = min(-line.open, left)
        if take > 0:
            takes[line.id] = -take
            left -= take
    left = netted + money
    for line in debits:
        take = min(line.open, left)
        if take > 0:
            takes[line.id] = take
            left -= take
    shares = [_share(ln, takes[ln.id]) for ln in ordered if ln.id in takes]
    return shares, amount - money


def reverse_for_refund(
    lines: Iterable[LineState], held: Mapping[int, int], unallocated: int, amount: int
) -> tuple[list[Share], int]:
    """What a refund of ``amount`` undoes. ``held`` is, per line id, the debit money the
    refunded payment still has on that line and ``unallocated`` what no line took; the
    refund gives back the unallocated money first, then the lines newest first.
    Returns (shares, the unallocated money given back)."""
    from_unallocated = min(unallocated, amount)
    left = amount - from_unallocated
    shares: list[Share] = []
    for line in reversed(oldest_first(lines)):
        give = min(held.get(line.id, 0), left) if line.amount > 0 else 0
        if give > 0:
            shares.append(_share(line, -give))
            left -= give
    return shares, from_unallocated
