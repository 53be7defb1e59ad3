"""Imagery schedules: daily orders, daily NDVI, weekly baselines."""

from microcrop_assets.defs.imagery.jobs import daily_ndvi_job, ndvi_baselines_job, satellite_orders_job
from microcrop_assets.defs.shared import day_keyed_schedule

satellite_orders_daily = day_keyed_schedule(
    "satellite_orders_daily",
    satellite_orders_job,
    "0 1 * * *",
    "satellite-orders",
    days_back=1,
    description="01:00 UTC, after the nightly weather run: orders from yesterday's stress (captured today).",
)


daily_ndvi_nightly = day_keyed_schedule(
    "daily_ndvi_nightly",
    daily_ndvi_job,
    "15 0 * * *",
    "daily-ndvi",
    days_back=1,
    description="00:15 UTC: yesterday's daily NDVI from every image processed for it.",
)


ndvi_baselines_weekly = day_keyed_schedule(
    "ndvi_baselines_weekly",
    ndvi_baselines_job,
    "0 2 * * 0",
    "ndvi-baselines",
    days_back=0,
    description="Sundays 02:00 UTC: the baseline of the week starting that Sunday, from the 60 days before it.",
)
