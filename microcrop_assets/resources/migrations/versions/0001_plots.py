"""plots: the insured plots and their policy terms

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plots",
        sa.Column("plot_id", sa.Text, primary_key=True),
        sa.Column("policy_id", sa.Text, nullable=False),
        sa.Column("farmer_address", sa.Text, nullable=False),
        sa.Column("crop", sa.Text, nullable=False),
        sa.Column("geometry", pg.JSONB, nullable=False),
        sa.Column("centroid_lat", sa.Float, nullable=False),
        sa.Column("centroid_lon", sa.Float, nullable=False),
        sa.Column("area_ha", sa.Numeric(14, 4), nullable=False),
        sa.Column("sowing_date", sa.Date, nullable=False),
        sa.Column("season_end", sa.Date, nullable=False),
        sa.Column("sum_insured_micro_usdc", sa.BigInteger, nullable=False),
        sa.Column("max_payout_micro_usdc", sa.BigInteger, nullable=False),
        sa.Column("policy_terms", pg.JSONB, nullable=False),
        sa.Column("content_sha256", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deactivated_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("sum_insured_micro_usdc > 0", name="plots_sum_insured_positive"),
        sa.CheckConstraint(
            "max_payout_micro_usdc > 0 AND max_payout_micro_usdc <= sum_insured_micro_usdc",
            name="plots_max_payout_within_sum_insured",
        ),
        sa.CheckConstraint("sowing_date < season_end", name="plots_sowing_before_season_end"),
    )
    op.create_index("plots_active_idx", "plots", ["active"])
    op.create_index("plots_policy_idx", "plots", ["policy_id"])


def downgrade() -> None:
    op.drop_table("plots")
