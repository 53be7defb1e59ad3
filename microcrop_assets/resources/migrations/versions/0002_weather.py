"""weather: stations, plot assignments, readings, station health, station days and plot indices

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from microcrop_assets.resources.migrations.timescale import make_hypertable

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FLOAT = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "weather_stations",
        sa.Column("station_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("cell_id", sa.Text),
        sa.Column("lat", FLOAT, nullable=False),
        sa.Column("lon", FLOAT, nullable=False),
        sa.Column("elevation", FLOAT),
        sa.Column("qod", FLOAT),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.create_table(
        "plot_stations",
        sa.Column("plot_id", sa.Text, sa.ForeignKey("plots.plot_id"), primary_key=True),
        sa.Column("station_id", sa.Text, sa.ForeignKey("weather_stations.station_id"), primary_key=True),
        sa.Column("distance_km", FLOAT, nullable=False),
        sa.Column("rank", sa.SmallInteger, nullable=False),
    )
    op.create_index("plot_stations_station_idx", "plot_stations", ["station_id"])

    op.create_table(
        "weather_readings",
        sa.Column("station_id", sa.Text, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("utc_offset_minutes", sa.SmallInteger),
        sa.Column("temperature", FLOAT),
        sa.Column("feels_like", FLOAT),
        sa.Column("dew_point", FLOAT),
        sa.Column("precipitation_rate", FLOAT),
        sa.Column("precipitation_accumulated", FLOAT),
        sa.Column("humidity", FLOAT),
        sa.Column("wind_speed", FLOAT),
        sa.Column("wind_gust", FLOAT),
        sa.Column("wind_direction", FLOAT),
        sa.Column("uv_index", FLOAT),
        sa.Column("pressure", FLOAT),
        sa.Column("solar_irradiance", FLOAT),
        sa.Column("icon", sa.Text),
        # time first: one index serves uniqueness, window deletes and window reads, and loads
        # sorted by time append to it (two indexes halved the bulk-load rate)
        sa.PrimaryKeyConstraint("ts", "station_id"),
    )
    make_hypertable("weather_readings", "ts", "1 day", "station_id", "7 days", "400 days")

    op.create_table(
        "weather_station_health",
        sa.Column("station_id", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("qod", FLOAT),
        sa.Column("location_quality", FLOAT),
        sa.Column("location_reason", sa.Text),
        sa.PrimaryKeyConstraint("day", "station_id"),
    )

    op.create_table(
        "weather_daily",
        sa.Column("station_id", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("rain_mm", FLOAT),
        sa.Column("tmax_c", FLOAT),
        sa.Column("tmin_c", FLOAT),
        sa.Column("tmean_c", FLOAT),
        sa.Column("humidity_mean", FLOAT),
        sa.Column("n_obs", sa.Integer, nullable=False),
        sa.Column("coverage", FLOAT, nullable=False),
        sa.Column("qod", FLOAT),
        sa.PrimaryKeyConstraint("day", "station_id"),
    )
    make_hypertable("weather_daily", "day", "30 days", "station_id", "90 days", None)

    op.create_table(
        "weather_indices",
        sa.Column("plot_id", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("in_season", sa.Boolean, nullable=False),
        sa.Column("growth_stage", sa.Text),
        sa.Column("rain_mm", FLOAT),
        sa.Column("tmax_c", FLOAT),
        sa.Column("tmin_c", FLOAT),
        sa.Column("tmean_c", FLOAT),
        sa.Column("n_stations", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("stations", pg.JSONB),
        sa.Column("weights", pg.JSONB),
        sa.Column("window_start", sa.Date),
        sa.Column("window_days", sa.SmallInteger),
        sa.Column("missing_days", sa.SmallInteger),
        sa.Column("rain_7d_mm", FLOAT),
        sa.Column("rain_30d_mm", FLOAT),
        sa.Column("rain_window_mm", FLOAT),
        sa.Column("cdd", FLOAT),
        sa.Column("rx1day_mm", FLOAT),
        sa.Column("rx3day_mm", FLOAT),
        sa.Column("rx5day_mm", FLOAT),
        sa.Column("r10mm", FLOAT),
        sa.Column("r20mm", FLOAT),
        sa.Column("worst_14d_rain_mm", FLOAT),
        sa.Column("heat_days", FLOAT),
        sa.Column("tmax_max_c", FLOAT),
        sa.Column("heat_degree_days", FLOAT),
        sa.Column("gdd", FLOAT),
        sa.Column("spi_1", FLOAT),
        sa.Column("spi_3", FLOAT),
        sa.Column("layers", pg.JSONB),
        sa.Column("drought_stress", FLOAT),
        sa.Column("flood_stress", FLOAT),
        sa.Column("heat_stress", FLOAT),
        sa.Column("weather_stress", FLOAT),
        sa.Column("missing_reason", sa.Text),
        sa.PrimaryKeyConstraint("day", "plot_id"),
    )
    op.create_index("weather_indices_plot_idx", "weather_indices", ["plot_id", "day"])
    make_hypertable("weather_indices", "day", "30 days", "plot_id", "180 days", None)


def downgrade() -> None:
    for table in (
        "weather_indices",
        "weather_daily",
        "weather_station_health",
        "weather_readings",
        "plot_stations",
        "weather_stations",
    ):
        op.drop_table(table)
