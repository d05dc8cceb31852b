"""merchants.stripe_account_pending: a connected account still in onboarding

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:25:00

A shop that connects its Stripe account keeps being paid where it was (the platform)
until Stripe enables charges on the new account; only then does the account become
``stripe_account``. Nullable and empty for every existing merchant.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_account_pending", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_merchants_stripe_account_pending"), ["stripe_account_pending"]
        )


def downgrade():
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_merchants_stripe_account_pending"), type_="unique")
        batch_op.drop_column("stripe_account_pending")
