"""The allocation rule on plain values: the worked example of docs/callbacks.md, and the
properties every payment and refund keeps."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.payments.allocation import LineState, allocate_payment, reverse_for_refund


def lines(*rows: tuple[int, str | None, date | None, int]) -> list[LineState]:
    return [LineState(i, i, d, ref, amount, settled) for i, (amount, ref, d, settled) in
            enumerate(rows)]  # fmt: skip


def apply(state: list[LineState], shares) -> list[LineState]:
    by_id = {s.line_id: s for s in shares}
    return [
        LineState(ln.id, ln.position, ln.date, ln.reference, ln.amount,
                  by_id[ln.id].settled_after if ln.id in by_id else ln.settled)
        for ln in state
    ]  # fmt: skip


STATEMENT = lines(
    (5000, "T-881", date(2026, 10, 3), 0),
    (-1000, "C-12", date(2026, 10, 10), 0),
    (6000, "T-902", date(2026, 10, 20), 0),
)


def test_the_documented_example():
    first, unallocated = allocate_payment(STATEMENT, 2000)
    assert [s.as_json() for s in first] == [
        {"position": 0, "reference": "T-881", "amount": 3000, "settled": False, "remaining": 2000},
        {"position": 1, "reference": "C-12", "amount": -1000, "settled": True, "remaining": 0},
    ]
    assert unallocated == 0
    after_first = apply(STATEMENT, first)
    second, _ = allocate_payment(after_first, 8000)
    assert [s.as_json() for s in second] == [
        {"position": 0, "reference": "T-881", "amount": 2000, "settled": True, "remaining": 0},
        {"position": 2, "reference": "T-902", "amount": 6000, "settled": True, "remaining": 0},
    ]
    after_second = apply(after_first, second)
    held = {s.line_id: s.amount for s in second}
    refund, from_unallocated = reverse_for_refund(after_second, held, 0, 1000)
    assert [s.as_json() for s in refund] == [
        {"position": 2, "reference": "T-902", "amount": -1000, "settled": False, "remaining": 1000}
    ]
    assert from_unallocated == 0


def test_undated_lines_come_after_the_dated_ones_in_the_merchants_order():
    state = lines((1000, "U1", None, 0), (1000, "D1", date(2026, 1, 2), 0), (1000, "U2", None, 0))
    shares, _ = allocate_payment(state, 1500)
    assert [(s.reference, s.amount) for s in shares] == [("D1", 1000), ("U1", 500)]


def test_money_beyond_the_lines_is_unallocated_and_refunded_first():
    state = lines((1000, "A", None, 0))
    shares, unallocated = allocate_payment(state, 1500)
    assert [(s.reference, s.amount, s.settled) for s in shares] == [("A", 1000, True)]
    assert unallocated == 500
    refund, from_unallocated = reverse_for_refund(apply(state, shares), {0: 1000}, 500, 700)
    assert from_unallocated == 500 and [(s.reference, s.amount) for s in refund] == [("A", -200)]


amounts = st.integers(min_value=-5000, max_value=20000).filter(bool)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(amounts, st.one_of(st.none(), st.dates())), min_size=1, max_size=8),
    st.lists(st.integers(min_value=1, max_value=30000), min_size=1, max_size=5),
    st.data(),
)
def test_shares_add_up_and_no_line_is_ever_settled_past_its_amount(rows, payments, data):
    state = lines(*[(amount, f"L{i}", d, 0) for i, (amount, d) in enumerate(rows)])
    money_on_lines = 0
    for amount in payments:
        shares, unallocated = allocate_payment(state, amount)
        assert sum(s.amount for s in shares) + unallocated == amount
        assert 0 <= unallocated <= amount
        state = apply(state, shares)
        money_on_lines += amount - unallocated
        held = {s.line_id: s.amount for s in shares if s.amount > 0}
        part = data.draw(st.integers(min_value=0, max_value=amount))
        if part:
            refund, given_back = reverse_for_refund(state, held, unallocated, part)
            assert given_back + -sum(s.amount for s in refund) == part
            assert all(s.amount < 0 for s in refund)
            state = apply(state, refund)
            money_on_lines -= part - given_back
        for ln in state:
            low, high = sorted((0, ln.amount))
            assert low <= ln.settled <= high
    # What the lines hold is exactly the money that reached them, net of refunds.
    assert sum(ln.settled for ln in state) == money_on_lines
