"""satellite orders: `placement_unknown` holds the plot's de-duplication window

Revision ID: 0007
Revises: 0006

A placement whose call failed after Spexi may have acted (the answer lost, a 500) may have bought a
capture: until a person settles it, no other order may be placed for the plot inside its window, so
the exclusion constraint of 0004 now covers it. There is no CHECK on status values to widen.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# frozen here, as each migration must be: the code's list is imagery/orders.py WINDOW_HOLDING
WINDOW_HOLDING = "('placing', 'placement_unknown', 'pending', 'processing', 'completed')"
BEFORE = "('placing', 'pending', 'processing', 'completed')"


def _window_constraint(statuses: str) -> None:
    op.execute("ALTER TABLE satellite_orders DROP CONSTRAINT satellite_orders_one_per_window")
    op.execute(
        "ALTER TABLE satellite_orders ADD CONSTRAINT satellite_orders_one_per_window EXCLUDE USING gist"
        " (plot_id WITH =, daterange(requested_day, window_end) WITH &&)"
        f" WHERE (status IN {statuses})"
    )


def upgrade() -> None:
    # cannot fail on existing rows: no code before this revision writes 'placement_unknown'
    _window_constraint(WINDOW_HOLDING)


def downgrade() -> None:
    # 'placement_unknown' rows stay, no longer holding their window (the code of 0006 never retries them)
    _window_constraint(BEFORE)
