"""Monitoring's own asset: pipeline_health, observed by service_health_sensor (no materialization)."""

import dagster as dg

pipeline_health = dg.AssetSpec(
    "pipeline_health",
    group_name="operations",
    description="Observed every minute by service_health_sensor: each service's state and the pipeline's "
    "volume in the last 24 h (readings, images, assessments), pending payouts and active plots.",
)
