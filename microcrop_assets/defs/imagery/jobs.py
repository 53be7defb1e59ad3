"""Imagery jobs: daily orders, rasters + daily NDVI, weekly baselines."""

import dagster as dg

from microcrop_assets.defs.imagery.assets import daily_ndvi, ndvi_baselines, ndvi_rasters, satellite_orders
from microcrop_assets.defs.shared import MAX_RUNTIME

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
