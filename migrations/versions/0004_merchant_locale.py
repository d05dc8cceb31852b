"""merchants: country and time zone, for dates and times the customer reads; legal details

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:30:00

A Belgian shop's English customers read ``06/11/26`` (not the US ``11/6/26``) and the
receipt's time in Brussels time, as the support console shows it. Existing merchants
get ``BE`` and ``Europe/Brussels`` (the server defaults), which is what they had.
``legal_details`` (name, address, VAT number) is printed at the foot of the PDF
statement and receipt.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("merchants") as batch:
        batch.add_column(sa.Column("legal_details", sa.Text(), nullable=True))
        batch.add_column(sa.Column("country", sa.String(2), server_default="BE", nullable=False))
        batch.add_column(
            sa.Column(
                "time_zone", sa.String(64), server_default="Europe/Brussels", nullable=False
            )
        )


def downgrade():
    with op.batch_alter_table("merchants") as batch:
        batch.drop_column("time_zone")
        batch.drop_column("country")
        batch.drop_column("legal_details")
