"""imagery: satellite orders, per-plot NDVI observations, daily NDVI, NDVI baselines

Revision ID: 0004
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from microcrop_assets.resources.migrations.timescale import make_hypertable

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FLOAT = sa.Float(precision=53)
# statuses that hold a plot's de-duplication window; the others release it (a new order may be placed)
WINDOW_HOLDING = "('placing', 'pending', 'processing', 'completed')"


def statistics() -> list[sa.Column]:
    """A plot's NDVI/EVI/LAI statistics (null when no valid pixel) and its valid fraction."""
    names = ("ndvi_mean", "ndvi_median", "ndvi_p10", "ndvi_p90", "evi_mean", "lai_mean")
    return [sa.Column(name, FLOAT) for name in names] + [sa.Column("valid_fraction", FLOAT, nullable=False)]


def upgrade() -> None:
    # btree_gist: text equality inside the exclusion constraint below (a contrib module, in TimescaleDB too)
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "satellite_orders",
        # one order request per plot and requesting day: two runs of the same day collide on the key
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, unique=True),  # Spexi's id, once placed
        sa.Column("plot_id", sa.Text, sa.ForeignKey("plots.plot_id"), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),  # stress | routine
        sa.Column("priority", sa.Text, nullable=False),
        sa.Column("requested_day", sa.Date, nullable=False),
        sa.Column("window_end", sa.Date, nullable=False),  # exclusive: no other order before this day
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capture_date", sa.Date, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_history", pg.JSONB, nullable=False, server_default="[]"),
        sa.Column("error", sa.Text),
        sa.Column("placement_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("download_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("image_key", sa.Text),
        sa.Column("image_sha256", sa.Text),
        sa.Column("raster_run_key", sa.Text),  # the ndvi_rasters run requested for this completion
        sa.Column("raster_requested_at", sa.DateTime(timezone=True)),
        sa.Column("raster_requests", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.Column("checked_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("window_end > requested_day", name="satellite_orders_window"),
    )
    # never two live orders for one plot inside the de-duplication window, whatever runs concurrently
    op.execute(
        "ALTER TABLE satellite_orders ADD CONSTRAINT satellite_orders_one_per_window EXCLUDE USING gist"
        " (plot_id WITH =, daterange(requested_day, window_end) WITH &&)"
        f" WHERE (status IN {WINDOW_HOLDING})"
    )
    op.create_index(
        "satellite_orders_open_idx",
        "satellite_orders",
        ["request_id"],
        postgresql_where=sa.text("status IN ('pending', 'processing')"),
    )
    op.create_index("satellite_orders_capture_idx", "satellite_orders", ["capture_date", "status"])
    op.create_index("satellite_orders_plot_idx", "satellite_orders", ["plot_id", "requested_day"])

    op.create_table(
        "plot_ndvi_observations",
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("plot_id", sa.Text, nullable=False),
        sa.Column("capture_date", sa.Date, nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True)),
        *statistics(),
        sa.Column("pixels", sa.Integer, nullable=False),
        sa.Column("masked", pg.JSONB, nullable=False),
        sa.Column("image_key", sa.Text, nullable=False),
        sa.Column("image_sha256", sa.Text, nullable=False),
        sa.Column("ndvi_key", sa.Text, nullable=False),
        sa.Column("ndvi_sha256", sa.Text, nullable=False),
        sa.Column("evi_key", sa.Text, nullable=False),
        sa.Column("lai_key", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("capture_date", "order_id", "plot_id"),
    )
    make_hypertable("plot_ndvi_observations", "capture_date", "30 days", "plot_id", "180 days", None)

    op.create_table(
        "daily_ndvi",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("plot_id", sa.Text, nullable=False),
        *statistics(),
        sa.Column("n_images", sa.Integer, nullable=False),
        sa.Column("sources", pg.JSONB, nullable=False),
        sa.PrimaryKeyConstraint("day", "plot_id"),
    )
    op.create_index("daily_ndvi_plot_idx", "daily_ndvi", ["plot_id", "day"])
    make_hypertable("daily_ndvi", "day", "30 days", "plot_id", "180 days", None)

    op.create_table(
        "ndvi_baselines",
        sa.Column("week_start", sa.Date, nullable=False),
        sa.Column("plot_id", sa.Text, nullable=False),
        sa.Column("window_start", sa.Date, nullable=False),
        sa.Column("window_end", sa.Date, nullable=False),
        sa.Column("ndvi_mean", FLOAT),
        sa.Column("ndvi_std", FLOAT),
        sa.Column("ndvi_min", FLOAT),
        sa.Column("ndvi_max", FLOAT),
        sa.Column("n_obs", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("missing_reason", sa.Text),
        sa.PrimaryKeyConstraint("week_start", "plot_id"),
    )


def downgrade() -> None:
    for table in ("ndvi_baselines", "daily_ndvi", "plot_ndvi_observations", "satellite_orders"):
        op.drop_table(table)
