"""money invariants: held by the database, and statement lines allocated

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:59:25.239731

What the database itself now refuses, on SQLite and PostgreSQL alike: a second
open attempt for one request, a second ``payment.succeeded`` for one payment
(or ``payment_request.paid`` for one request), a request that received more
than it may, refunds beyond what was paid, non-positive amounts, unknown
statuses and kinds, and a statement line settled past its amount.

Existing data: payments that settled count as applied; statement lines get
the allocations the documented rule gives their payments and refunds, in the
order they happened (docs/callbacks.md). Rows that break an invariant (left by
the double fulfilment this revision exists to prevent) stop the upgrade with
their ids instead of being changed silently: docs/deploy.md says what to do.
"""
from alembic import op
import sqlalchemy as sa

import portal.db_types


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SETTLED = "('succeeded', 'partially_refunded', 'refunded')"
OPEN = "status IN ('pending', 'processing')"
PAYMENT_STATUSES = (
    "status IN ('pending', 'processing', 'succeeded', 'failed', 'canceled', "
    "'partially_refunded', 'refunded')"
)
REQUEST_STATUSES = "status IN ('open', 'partially_paid', 'paid', 'void', 'expired')"
CAP = (
    "CASE WHEN allow_full_payment AND order_total IS NOT NULL THEN order_total "
    "WHEN amount IS NULL THEN COALESCE(wallet_max, 0) ELSE amount END"
)

# Each query lists the rows that would break one of the new constraints.
VIOLATIONS = {
    "requests paid beyond what they ask": (
        f"SELECT id FROM payment_requests WHERE amount_paid > {CAP} OR amount_paid < 0 "
        "OR amount_refunded < 0 OR amount_refunded > amount_paid"
    ),
    "payments settled twice (two payment.succeeded events)": (
        "SELECT payment_id FROM events WHERE type = 'payment.succeeded' "
        "GROUP BY payment_id HAVING COUNT(*) > 1"
    ),
    "requests paid twice (two payment_request.paid events)": (
        "SELECT request_id FROM events WHERE type = 'payment_request.paid' "
        "GROUP BY request_id HAVING COUNT(*) > 1"
    ),
    "payments refunded beyond their amount": (
        "SELECT id FROM payments WHERE amount <= 0 OR amount_refunded < 0 "
        "OR amount_refunded > amount"
    ),
    "receipt numbers used twice by one merchant": (
        "SELECT receipt_number FROM payments WHERE receipt_number IS NOT NULL "
        "GROUP BY merchant_id, receipt_number HAVING COUNT(*) > 1"
    ),
}


def _refuse_broken_rows(bind):
    found = []
    for what, query in VIOLATIONS.items():
        ids = [str(row[0]) for row in bind.execute(sa.text(query + " LIMIT 20"))]
        if ids:
            found.append(f"{what}: {', '.join(ids)}")
    if found:
        raise RuntimeError(
            "revision 0002 cannot hold its money invariants on this data; resolve these "
            "rows with support first (docs/deploy.md, 'Upgrading to 0002'):\n  "
            + "\n  ".join(found)
        )


def _close_duplicate_attempts(bind):
    """Two open attempts for one request (left by the unlocked SQLite path): keep the newest.
    An older one that still takes money is applied or refunded by the portal's rules."""
    rows = bind.execute(sa.text(
        f"SELECT id, request_id FROM payments WHERE {OPEN} ORDER BY request_id, created_at DESC"
    )).all()
    seen = set()
    for payment_id, request_id in rows:
        if request_id in seen:
            bind.execute(
                sa.text("UPDATE payments SET status = 'canceled', failure_code = 'superseded' "
                        "WHERE id = :id"),
                {"id": payment_id},
            )
        seen.add(request_id)


def _oldest_first(lines):
    return sorted(lines, key=lambda ln: (ln["date"] is None, ln["date"] or "", ln["position"]))


def _allocate(lines, amount):
    """portal/payments/allocation.py's rule as it stood at this revision (frozen here)."""
    ordered = _oldest_first(lines)
    debits = [ln for ln in ordered if ln["amount"] > 0 and ln["amount"] - ln["settled"] > 0]
    credits = [ln for ln in ordered if ln["amount"] < 0 and ln["amount"] - ln["settled"] < 0]
    debit_open = sum(ln["amount"] - ln["settled"] for ln in debits)
    netted = min(-sum(ln["amount"] - ln["settled"] for ln in credits), debit_open)
    money = min(amount, debit_open - netted)
    takes = {}
    left = netted
    for ln in credits:
        take = min(ln["settled"] - ln["amount"], left)
        if take > 0:
            takes[ln["id"]] = -take
            left -= take
    left = netted + money
    for ln in debits:
        take = min(ln["amount"] - ln["settled"], left)
        if take > 0:
            takes[ln["id"]] = take
            left -= take
    return takes, amount - money


def _reverse(lines, held, unallocated, amount):
    from_unallocated = min(unallocated, amount)
    left = amount - from_unallocated
    takes = {}
    for ln in reversed(_oldest_first(lines)):
        give = min(held.get(ln["id"], 0), left) if ln["amount"] > 0 else 0
        if give > 0:
            takes[ln["id"]] = -give
            left -= give
    return takes, from_unallocated


def _allocate_existing_statements(bind):
    payments = bind.execute(sa.text(
        "SELECT p.id, p.request_id, p.amount, p.succeeded_at FROM payments p "
        "JOIN payment_requests r ON r.id = p.request_id "
        f"WHERE r.kind = 'statement' AND p.status IN {SETTLED} ORDER BY p.succeeded_at"
    )).all()
    if not payments:
        return
    allocations = sa.table(
        "payment_allocations", sa.column("payment_id"), sa.column("refund_id"),
        sa.column("line_id"), sa.column("amount"), sa.column("created_at"),  # as read: naive UTC
    )
    by_request = {}
    for payment in payments:
        by_request.setdefault(payment.request_id, []).append(payment)
    for request_id, paid in by_request.items():
        lines = [dict(row._mapping, settled=0) for row in bind.execute(
            sa.text("SELECT id, position, date, amount FROM statement_lines WHERE request_id = :r"),
            {"r": request_id},
        )]
        if not lines:
            continue
        steps = [(p.succeeded_at, 0, p) for p in paid]
        for p in paid:
            for refund in bind.execute(
                sa.text("SELECT id, amount, created_at FROM refunds WHERE payment_id = :p"),
                {"p": p.id},
            ):
                steps.append((refund.created_at, 1, (p, refund)))
        held = {}
        unallocated = {}
        by_id = {ln["id"]: ln for ln in lines}
        order = [ln["id"] for ln in _oldest_first(lines)]
        for at, is_refund, item in sorted(steps, key=lambda s: (str(s[0]), s[1])):
            if is_refund:
                payment, refund = item
                takes, returned = _reverse(
                    lines, held.get(payment.id, {}), unallocated.get(payment.id, 0), refund.amount
                )
                unallocated[payment.id] -= returned
                payment_id, refund_id = payment.id, refund.id
            else:
                takes, unallocated[item.id] = _allocate(lines, item.amount)
                payment_id, refund_id = item.id, None
            for line_id, amount in sorted(takes.items(), key=lambda t: order.index(t[0])):
                by_id[line_id]["settled"] += amount
                if by_id[line_id]["amount"] > 0:
                    mine = held.setdefault(payment_id, {})
                    mine[line_id] = mine.get(line_id, 0) + amount
                bind.execute(allocations.insert().values(
                    payment_id=payment_id, refund_id=refund_id, line_id=line_id,
                    amount=amount, created_at=at,
                ))
        for ln in lines:
            bind.execute(
                sa.text("UPDATE statement_lines SET amount_settled = :s WHERE id = :id"),
                {"s": ln["settled"], "id": ln["id"]},
            )


def upgrade():
    bind = op.get_bind()
    _refuse_broken_rows(bind)
    _close_duplicate_attempts(bind)

    op.create_table('payment_allocations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('refund_id', sa.String(length=40), nullable=True),
    sa.Column('line_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('created_at', portal.db_types.UTCDateTime(), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_payment_allocations_amount_nonzero')),
    sa.ForeignKeyConstraint(['line_id'], ['statement_lines.id'], name=op.f('fk_payment_allocations_line_id_statement_lines')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_allocations_payment_id_payments')),
    sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_payment_allocations_refund_id_refunds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_allocations'))
    )
    with op.batch_alter_table('payment_allocations', schema=None) as batch_op:
        batch_op.create_index('ix_payment_allocations_line', ['line_id'], unique=False)
        batch_op.create_index('ix_payment_allocations_payment', ['payment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_allocations_refund_id'), ['refund_id'], unique=False)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('uq_events_payment_succeeded', ['payment_id'], unique=True, sqlite_where=sa.text("type = 'payment.succeeded'"), postgresql_where=sa.text("type = 'payment.succeeded'"))
        batch_op.create_index('uq_events_request_paid', ['request_id'], unique=True, sqlite_where=sa.text("type = 'payment_request.paid'"), postgresql_where=sa.text("type = 'payment_request.paid'"))

    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('receipt_seq', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('min_payment', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('applied', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('refund_due', sa.String(length=40), nullable=True))
    op.execute(f"UPDATE payments SET applied = true WHERE status IN {SETTLED}")
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_payments_receipt_number'), type_='unique')
        batch_op.create_unique_constraint('uq_payments_merchant_receipt', ['merchant_id', 'receipt_number'])
        batch_op.create_index('uq_payments_open_attempt', ['request_id'], unique=True, sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
        batch_op.create_check_constraint(op.f('ck_payments_status'), PAYMENT_STATUSES)
        batch_op.create_check_constraint(op.f('ck_payments_amount_positive'), 'amount > 0')
        batch_op.create_check_constraint(op.f('ck_payments_refunded_in_range'), 'amount_refunded >= 0 AND amount_refunded <= amount')
        batch_op.create_check_constraint(op.f('ck_payments_applied_settled'), f'NOT applied OR status IN {SETTLED}')

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=20), server_default='merchant', nullable=False))
        batch_op.add_column(sa.Column('notice_sent_at', portal.db_types.UTCDateTime(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_refunds_amount_positive'), 'amount > 0')
        batch_op.create_check_constraint(op.f('ck_refunds_status'), "status = 'succeeded'")
        batch_op.create_check_constraint(op.f('ck_refunds_source'), "source IN ('merchant', 'support', 'provider', 'automatic')")
    op.execute("UPDATE refunds SET source = 'provider' WHERE provider_refund_id IS NULL")

    with op.batch_alter_table('payment_requests', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_payment_requests_status'), REQUEST_STATUSES)
        batch_op.create_check_constraint(op.f('ck_payment_requests_kind'), "kind IN ('statement', 'wallet_topup', 'order_deposit')")
        batch_op.create_check_constraint(op.f('ck_payment_requests_amount_positive'), 'amount IS NULL OR amount > 0')
        batch_op.create_check_constraint(op.f('ck_payment_requests_paid_in_cap'), f'amount_paid >= 0 AND amount_paid <= {CAP}')
        batch_op.create_check_constraint(op.f('ck_payment_requests_refunded_in_paid'), 'amount_refunded >= 0 AND amount_refunded <= amount_paid')
        batch_op.create_check_constraint(op.f('ck_payment_requests_order_total_positive'), 'order_total IS NULL OR order_total > 0')
        batch_op.create_check_constraint(op.f('ck_payment_requests_wallet_bounds'), 'wallet_min IS NULL OR (wallet_min > 0 AND (wallet_max IS NULL OR wallet_max >= wallet_min))')

    with op.batch_alter_table('statement_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount_settled', sa.BigInteger(), server_default='0', nullable=False))
    _allocate_existing_statements(bind)
    with op.batch_alter_table('statement_lines', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_statement_lines_settled_in_line'), '(amount >= 0 AND amount_settled >= 0 AND amount_settled <= amount) OR (amount < 0 AND amount_settled <= 0 AND amount_settled >= amount)')


def downgrade():
    with op.batch_alter_table('statement_lines', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_statement_lines_settled_in_line'), type_='check')
        batch_op.drop_column('amount_settled')

    with op.batch_alter_table('payment_requests', schema=None) as batch_op:
        for name in ('status', 'kind', 'amount_positive', 'paid_in_cap', 'refunded_in_paid',
                     'order_total_positive', 'wallet_bounds'):
            batch_op.drop_constraint(op.f(f'ck_payment_requests_{name}'), type_='check')

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        for name in ('amount_positive', 'status', 'source'):
            batch_op.drop_constraint(op.f(f'ck_refunds_{name}'), type_='check')
        batch_op.drop_column('notice_sent_at')
        batch_op.drop_column('source')

    with op.batch_alter_table('payments', schema=None) as batch_op:
        for name in ('status', 'amount_positive', 'refunded_in_range', 'applied_settled'):
            batch_op.drop_constraint(op.f(f'ck_payments_{name}'), type_='check')
        batch_op.drop_index('uq_payments_open_attempt', sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
        batch_op.drop_constraint('uq_payments_merchant_receipt', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_payments_receipt_number'), ['receipt_number'])
        batch_op.drop_column('refund_due')
        batch_op.drop_column('applied')

    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_column('min_payment')
        batch_op.drop_column('receipt_seq')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('uq_events_request_paid', sqlite_where=sa.text("type = 'payment_request.paid'"), postgresql_where=sa.text("type = 'payment_request.paid'"))
        batch_op.drop_index('uq_events_payment_succeeded', sqlite_where=sa.text("type = 'payment.succeeded'"), postgresql_where=sa.text("type = 'payment.succeeded'"))

    with op.batch_alter_table('payment_allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_allocations_refund_id'))
        batch_op.drop_index('ix_payment_allocations_payment')
        batch_op.drop_index('ix_payment_allocations_line')

    op.drop_table('payment_allocations')
