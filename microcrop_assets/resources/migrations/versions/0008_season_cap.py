"""damage: a plot-season's payouts can never be stored above its sum insured

Revision ID: 0008
Revises: 0007

Each assessment now names its plot-season (`season_start`, the sowing date) and the sum insured it
was assessed under. A statement trigger runs after every INSERT (COPY included) and UPDATE of
`damage_assessments`: when the statement writes a payout it takes a transaction lock (so two writers
of one plot-season queue instead of both passing against the committed rows), then refuses the whole statement when a
plot-season's paying assessments, of any day and any policy id, add up to more than its smallest
sum insured. The asset computes payouts under its own lock so that this never fires; the trigger is
what makes a breach impossible to store, whatever code writes the table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_CHECK = """
CREATE FUNCTION damage_assessments_season_cap() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    breach record;
BEGIN
    -- one lock for every writer of payouts (a lock per plot would exhaust the lock table on a day
    -- with 100,000 paying plots); the asset already writes one day at a time
    IF EXISTS (SELECT 1 FROM changed WHERE payout_micro_usdc > 0) THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('microcrop.season_cap', 0));
    END IF;
    -- a new snapshot after the lock: the rows another writer committed meanwhile count too
    SELECT d.plot_id, d.season_start, sum(d.payout_micro_usdc) AS paid, min(d.sum_insured_micro_usdc) AS cap
    INTO breach
    FROM damage_assessments d
    JOIN (SELECT DISTINCT plot_id, season_start FROM changed WHERE payout_micro_usdc > 0) AS c
      USING (plot_id, season_start)
    WHERE d.payout_micro_usdc > 0
    GROUP BY d.plot_id, d.season_start
    HAVING sum(d.payout_micro_usdc) > min(d.sum_insured_micro_usdc)
    ORDER BY d.plot_id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'plot % season from %: payouts of % micro-USDC would exceed its sum insured of % micro-USDC',
            breach.plot_id, breach.season_start, breach.paid, breach.cap
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.add_column("damage_assessments", sa.Column("season_start", sa.Date))
    op.add_column("damage_assessments", sa.Column("sum_insured_micro_usdc", sa.BigInteger))
    # rows of earlier revisions carry both in their inputs document
    op.execute(
        "UPDATE damage_assessments SET season_start = (inputs->>'sowing_date')::date,"
        " sum_insured_micro_usdc = (inputs->>'sum_insured_micro_usdc')::bigint"
    )
    op.alter_column("damage_assessments", "season_start", nullable=False)
    op.alter_column("damage_assessments", "sum_insured_micro_usdc", nullable=False)
    op.create_check_constraint(
        "damage_assessments_payout_within_sum_insured",
        "damage_assessments",
        "payout_micro_usdc <= sum_insured_micro_usdc AND day >= season_start",
    )
    op.create_index(
        "damage_assessments_season_paid_idx",
        "damage_assessments",
        ["plot_id", "season_start"],
        postgresql_where=sa.text("payout_micro_usdc > 0"),
    )
    op.execute(_CHECK)
    for event in ("INSERT", "UPDATE"):  # a trigger with transition tables takes one event
        op.execute(
            f"CREATE TRIGGER damage_assessments_season_cap_{event.lower()} AFTER {event} ON damage_assessments"
            " REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION damage_assessments_season_cap()"
        )


def downgrade() -> None:
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER damage_assessments_season_cap_{event} ON damage_assessments")
    op.execute("DROP FUNCTION damage_assessments_season_cap()")
    op.drop_index("damage_assessments_season_paid_idx", "damage_assessments")
    op.drop_constraint("damage_assessments_payout_within_sum_insured", "damage_assessments")
    op.drop_column("damage_assessments", "sum_insured_micro_usdc")
    op.drop_column("damage_assessments", "season_start")
