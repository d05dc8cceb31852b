"""jobs: partial indexes for a claim that stays cheap whatever the table holds

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:00:00

The claim reads queued and running jobs only, so every index on ``jobs`` is partial:
the week of finished jobs kept for support is never walked by a claim. The indexes are
built ``CONCURRENTLY`` on PostgreSQL (every outbox write goes to this table, and a week
of finished jobs takes a while to index), outside a transaction as PostgreSQL requires.

``ix_jobs_status_run_at`` goes in the same release: the previous release's claim never
used it (its OR over two statuses is a sequential scan), only its ``/readyz`` query
does, which scans instead for the few minutes of a deploy.

Self-contained: it touches only ``jobs`` and the new ``provider_circuits``.
"""

import sqlalchemy as sa
from alembic import op

import portal.db_types

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# name, columns, the status the index covers
INDEXES = (
    ("ix_jobs_queued_lane", ["queue_key", "run_at", "id"], "queued"),
    ("ix_jobs_running_locked_until", ["locked_until"], "running"),
    ("ix_jobs_done_finished_at", ["finished_at"], "done"),
)


def _where(status):
    predicate = sa.text(f"status = '{status}'")
    return {"sqlite_where": predicate, "postgresql_where": predicate}


def upgrade():
    op.create_table(
        "provider_circuits",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("opened_at", portal.db_types.UTCDateTime(), nullable=True),
        sa.Column("retry_at", portal.db_types.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_failure_at", portal.db_types.UTCDateTime(), nullable=True),
        sa.Column("last_success_at", portal.db_types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_circuits")),
    )
    with op.get_context().autocommit_block(), op.batch_alter_table("jobs") as batch_op:
        for name, columns, status in INDEXES:
            batch_op.create_index(name, columns, postgresql_concurrently=True, **_where(status))
        batch_op.drop_index("ix_jobs_status_run_at", postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block(), op.batch_alter_table("jobs") as batch_op:
        batch_op.create_index(
            "ix_jobs_status_run_at", ["status", "run_at"], postgresql_concurrently=True
        )
        for name, _columns, _status in INDEXES:
            batch_op.drop_index(name, postgresql_concurrently=True)
    op.drop_table("provider_circuits")
