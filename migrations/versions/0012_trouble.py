"""merchant notices (endpoint trouble, daily digest) and short links for SMS

Revision ID: 0012_trouble
Revises: 0008
Create Date: 2026-12-02 04:40:00

``merchant_notices``: one row per e-mail the portal decided to send a merchant about its
own account; partial unique indexes keep one waiting dead-letter notice per endpoint and
one digest per merchant and day. ``short_links``: ``/s/<code>`` for link SMS.
``merchants.daily_digest``: off for every existing merchant.
"""

import sqlalchemy as sa
from alembic import op

import portal.db_types

# revision identifiers, used by Alembic.
revision = "0012_trouble"
down_revision = "0011_reusable"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("daily_digest", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "merchant_notices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("send_at", portal.db_types.UTCDateTime(), nullable=False),
        sa.Column("sent_at", portal.db_types.UTCDateTime(), nullable=True),
        sa.Column("created_at", portal.db_types.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('endpoint_disabled', 'dead_letters', 'digest')",
            name=op.f("ck_merchant_notices_kind"),
        ),
        sa.CheckConstraint("deliveries >= 0", name=op.f("ck_merchant_notices_deliveries_positive")),
        sa.CheckConstraint(
            "(kind = 'digest') = (day IS NOT NULL)", name=op.f("ck_merchant_notices_digest_has_day")
        ),
        sa.CheckConstraint(
            "(kind = 'digest') = (endpoint_id IS NULL)",
            name=op.f("ck_merchant_notices_endpoint_or_digest"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["callback_endpoints.id"],
            name=op.f("fk_merchant_notices_endpoint_id_callback_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_merchant_notices_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_notices")),
    )
    with op.batch_alter_table("merchant_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_merchant_notices_endpoint_id"), ["endpoint_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_merchant_notices_merchant_id"), ["merchant_id"], unique=False
        )
        batch_op.create_index(
            "uq_merchant_notices_digest", ["merchant_id", "day"], unique=True,
            sqlite_where=sa.text("kind = 'digest'"), postgresql_where=sa.text("kind = 'digest'"),
        )  # fmt: skip
        batch_op.create_index(
            "uq_merchant_notices_waiting", ["endpoint_id"], unique=True,
            sqlite_where=sa.text("kind = 'dead_letters' AND sent_at IS NULL"),
            postgresql_where=sa.text("kind = 'dead_letters' AND sent_at IS NULL"),
        )  # fmt: skip
    op.create_table(
        "short_links",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", portal.db_types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["payment_requests.id"],
            name=op.f("fk_short_links_request_id_payment_requests"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_short_links")),
        sa.UniqueConstraint("request_id", name=op.f("uq_short_links_request_id")),
    )


def downgrade():
    op.drop_table("short_links")
    with op.batch_alter_table("merchant_notices", schema=None) as batch_op:
        batch_op.drop_index("uq_merchant_notices_waiting")
        batch_op.drop_index("uq_merchant_notices_digest")
        batch_op.drop_index(batch_op.f("ix_merchant_notices_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_merchant_notices_endpoint_id"))
    op.drop_table("merchant_notices")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("daily_digest")
