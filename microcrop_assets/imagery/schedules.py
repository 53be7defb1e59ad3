"""Imagery jobs and schedules: daily orders, rasters + daily NDVI, weekly baselines."""

import dagster as dg

from microcrop_assets.imagery.assets import daily_ndvi, ndvi_baselines, ndvi_rasters, satellite_orders
from microcrop_assets.partitions import day_keyed_schedule
from microcrop_assets.weather.schedules import MAX_RUNTIME

SATELLITE_TAGS = {"microcrop/queue": "satellite"}
# dagster/max_runtime per job: orders go out at Spexi's 10 calls/min, so a stress day with a few
# hundred plots needs up to an hour; a capture day's rasters (download + COGs per image) likewise;
# daily NDVI and baselines are set-based SQL over one day or 60 days: minutes at most.

satellite_orders_job = dg.define_asset_job(
    "satellite_orders_job",
    selection=[satellite_orders],
    tags={**SATELLITE_TAGS, MAX_RUNTIME: "3600"},
    description="Order Spexi captures for stressed plots and the routine cadence of one day.",
)
ndvi_rasters_job = dg.define_asset_job(
    "ndvi_rasters_job",
    selection=[ndvi_rasters, daily_ndvi],
    tags={**SATELLITE_TAGS, MAX_RUNTIME: "3600"},
    description="Process one capture day's completed orders into COGs, plot observations and daily NDVI.",
)
daily_ndvi_job = dg.define_asset_job(
    "daily_ndvi_job",
    selection=[daily_ndvi],
    tags={**SATELLITE_TAGS, MAX_RUNTIME: "600"},
    description="Combine one day's plot observations into daily NDVI.",
)
ndvi_baselines_job = dg.define_asset_job(
    "ndvi_baselines_job",
    selection=[ndvi_baselines],
    tags={**SATELLITE_TAGS, MAX_RUNTIME: "900"},
    description="Per-plot NDVI baselines for one week from the 60 days before it.",
)


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
