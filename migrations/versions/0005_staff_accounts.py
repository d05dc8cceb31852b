"""staff_users: disabled accounts, the last TOTP step accepted

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:30:00

``disabled_at`` lets ``flask staff disable`` stop an account (its sessions end at their
next request); ``totp_last_step`` refuses a TOTP code used a second time within its
window. Both nullable: existing accounts stay enabled, with no code seen yet.
(``merchants.country``, which the console's phone search reads, came with 0004.)
"""

import sqlalchemy as sa
from alembic import op

import portal.db_types

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", portal.db_types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("disabled_at")
