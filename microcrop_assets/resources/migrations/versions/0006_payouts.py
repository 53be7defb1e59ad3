"""payouts: the ledger of damage reports sent to the payout receiver contract

Revision ID: 0006
Revises: 0005

The proof columns (proof_cid, proof_uri, proof_key) belong to damage_assessments (migration 0005).
A payout row is created for a triggered assessment once its proof is pinned, and moves
pending -> submitted -> confirmed | failed. The signed transaction (nonce, hash, raw bytes) is stored
before it is broadcast, so after a crash the pipeline finds it again instead of signing another.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATUSES = ("pending", "submitted", "confirmed", "failed")


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column("assessment_id", sa.Text, primary_key=True),
        sa.Column("plot_id", sa.Text, nullable=False),
        sa.Column("policy_id", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        # the DamageReport, in the contract's units
        sa.Column("damage_bps", sa.Integer, nullable=False),
        sa.Column("weather_damage_bps", sa.Integer, nullable=False),
        sa.Column("satellite_damage_bps", sa.Integer, nullable=False),
        sa.Column("payout_micro_usdc", sa.BigInteger, nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proof_cid", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("reason", sa.Text),  # why a pending payout waits (no chain configured, ...)
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("chain_id", sa.BigInteger),
        sa.Column("receiver_address", sa.Text),
        sa.Column("sender_address", sa.Text),
        sa.Column("nonce", sa.BigInteger),
        sa.Column("tx_hash", sa.Text),
        sa.Column("raw_transaction", sa.Text),
        sa.Column("block_number", sa.BigInteger),
        sa.Column("gas_used", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("submitted_at", sa.DateTime(timezone=True)),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(f"status IN {STATUSES}", name="payouts_status_known"),
        sa.CheckConstraint(
            "damage_bps BETWEEN 0 AND 10000 AND weather_damage_bps BETWEEN 0 AND 10000"
            " AND satellite_damage_bps BETWEEN 0 AND 10000",
            name="payouts_bps_range",
        ),
        sa.CheckConstraint("payout_micro_usdc > 0", name="payouts_amount_positive"),
        # a payout is submitted or confirmed only with the hash of a transaction the node accepted
        sa.CheckConstraint("status NOT IN ('submitted', 'confirmed') OR tx_hash IS NOT NULL", name="payouts_sent_hash"),
    )
    op.create_index("payouts_status_idx", "payouts", ["status"])


def downgrade() -> None:
    op.drop_table("payouts")
