"""vendor gaps: units of vendor data (station days, orders, pins) that could not be fetched yet

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vendor_gaps",
        sa.Column("stage", sa.Text, nullable=False),  # the asset that fetches it, e.g. weather_readings
        sa.Column("day", sa.Date, nullable=False),  # the partition day it belongs to
        sa.Column("key", sa.Text, nullable=False),  # station id, order id, ...
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),  # the last error, secrets already redacted
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),  # null while the gap is open
        sa.PrimaryKeyConstraint("stage", "day", "key"),
    )
    # the scheduled refetch asks for a stage's open gaps of recent days
    op.create_index(
        "vendor_gaps_open_idx", "vendor_gaps", ["stage", "day"], postgresql_where=sa.text("resolved_at IS NULL")
    )


def downgrade() -> None:
    op.drop_table("vendor_gaps")
