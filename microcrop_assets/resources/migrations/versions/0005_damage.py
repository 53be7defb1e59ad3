"""damage: daily damage assessments with their inputs, payouts and archive marks

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# shares are exact decimals quantised to 12 places (science/damage.py SHARE_PLACES)
SHARE = sa.Numeric(20, 12)


def upgrade() -> None:
    op.create_table(
        "damage_assessments",
        # uuid5 of plot, policy, day and method version: a rerun replaces, never duplicates
        sa.Column("assessment_id", sa.Text, primary_key=True),
        sa.Column("plot_id", sa.Text, nullable=False),
        sa.Column("policy_id", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("method_version", sa.Text, nullable=False),
        sa.Column("weather_damage", SHARE),
        sa.Column("satellite_damage", SHARE),
        sa.Column("sources", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("weights", pg.JSONB, nullable=False),
        sa.Column("confidence", sa.Numeric(5, 4), nullable=False),  # 0..1 in steps of 0.0001
        sa.Column("growth_stage", sa.Text, nullable=False),
        sa.Column("stage_multiplier", SHARE, nullable=False),
        sa.Column("damage", SHARE, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("triggered", sa.Boolean, nullable=False),
        sa.Column("entitlement_micro_usdc", sa.BigInteger, nullable=False),
        sa.Column("payout_micro_usdc", sa.BigInteger, nullable=False),
        sa.Column("damage_bps", sa.Integer, nullable=False),
        sa.Column("weather_damage_bps", sa.Integer),
        sa.Column("satellite_damage_bps", sa.Integer),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("missing_reason", sa.Text),
        sa.Column("inputs", pg.JSONB, nullable=False),
        sa.Column("proof_cid", sa.Text),
        sa.Column("proof_uri", sa.Text),
        sa.Column("proof_key", sa.Text),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        sa.Column("archive_key", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("damage >= 0 AND damage <= 1", name="damage_assessments_damage_share"),
        sa.CheckConstraint(
            "damage_bps BETWEEN 0 AND 10000 AND weather_damage_bps BETWEEN 0 AND 10000"
            " AND satellite_damage_bps BETWEEN 0 AND 10000",
            name="damage_assessments_bps_range",
        ),
        sa.CheckConstraint(
            "payout_micro_usdc >= 0 AND payout_micro_usdc <= entitlement_micro_usdc",
            name="damage_assessments_payout_within_entitlement",
        ),
        sa.CheckConstraint("(archived_at IS NULL) = (archive_key IS NULL)", name="damage_assessments_archive_marked"),
    )
    op.create_index("damage_assessments_day_idx", "damage_assessments", ["day"])
    op.create_index("damage_assessments_plot_idx", "damage_assessments", ["plot_id", "day"])
    op.create_index(
        "damage_assessments_unarchived_idx",
        "damage_assessments",
        ["assessed_at"],
        postgresql_where=sa.text("archived_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("damage_assessments")
