"""callback_endpoints.deleted_at: an endpoint the merchant deleted

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:15:00

``DELETE /api/v1/webhook-endpoints/{id}`` keeps the row (its deliveries and attempts are
support's record) and stamps it: it leaves every list, receives and is redelivered nothing.
"""

import sqlalchemy as sa
from alembic import op

import portal.db_types

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("callback_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", portal.db_types.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("callback_endpoints", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
