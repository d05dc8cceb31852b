"""Reusable top-up links (children per payment) and "ask for a new link"

Revision ID: 0011_reusable
Revises: 0008
Create Date: 2026-12-02 04:40:00

A ``wallet_topup`` made with ``reusable: true`` is a parent that is never paid itself:
each payment through its link is made on a child request (``parent_request_id``), one per
pay form sent (``parent_nonce``, unique per parent: a double click reuses the child).
``renewal_requested_at`` keeps the last "ask for a new link" passed on to the merchant.
Existing requests are not reusable, have no parent and no renewal.
"""

import sqlalchemy as sa

import portal.db_types
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011_reusable"
down_revision = "0010_account"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("payment_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reusable", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("parent_request_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("parent_nonce", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("renewal_requested_at", portal.db_types.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_payment_requests_parent_request_id_payment_requests"),
            "payment_requests",
            ["parent_request_id"],
            ["id"],
        )
        batch_op.create_index(
            batch_op.f("ix_payment_requests_parent_request_id"), ["parent_request_id"]
        )
        batch_op.create_index(
            "uq_payment_requests_parent_nonce", ["parent_request_id", "parent_nonce"], unique=True
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_payment_requests_reusable_never_paid"),
            "NOT reusable OR (kind = 'wallet_topup' AND amount_paid = 0 "
            "AND parent_request_id IS NULL)",
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_payment_requests_child_has_nonce"),
            "(parent_request_id IS NULL) = (parent_nonce IS NULL)",
        )


def downgrade():
    with op.batch_alter_table("payment_requests", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_payment_requests_child_has_nonce"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("ck_payment_requests_reusable_never_paid"), type_="check"
        )
        batch_op.drop_index("uq_payment_requests_parent_nonce")
        batch_op.drop_index(batch_op.f("ix_payment_requests_parent_request_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_payment_requests_parent_request_id_payment_requests"),
            type_="foreignkey",
        )
        batch_op.drop_column("renewal_requested_at")
        batch_op.drop_column("parent_nonce")
        batch_op.drop_column("parent_request_id")
        batch_op.drop_column("reusable")
