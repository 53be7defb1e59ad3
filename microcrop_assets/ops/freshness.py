"""When each asset is expected to have been materialized, so the UI flags missing days.

Freshness is per asset (its latest materialization), not per partition: a daily asset passes when
its nightly run happened, which is when yesterday's partition was written.
"""

import datetime as dt

import dagster as dg

from microcrop_assets import settings

# the nightly weather run starts at 00:15 UTC; by 03:00 yesterday's station days and indices exist
NIGHTLY = dg.FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=dt.timedelta(hours=3))

FRESHNESS: dict[str, dg.FreshnessPolicy] = {
    # today's readings are refreshed every WEATHER_FETCH_INTERVAL minutes: three missed ticks fail
    "weather_readings": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(minutes=3 * settings.env_int("WEATHER_FETCH_INTERVAL", 5)),
        warn_window=dt.timedelta(minutes=2 * settings.env_int("WEATHER_FETCH_INTERVAL", 5)),
    ),
    "weather_daily": NIGHTLY,
    "weather_indices": NIGHTLY,
    # satellite orders at 01:00 UTC and daily NDVI at 00:15 UTC run for yesterday
    "satellite_orders": NIGHTLY,
    "daily_ndvi": NIGHTLY,
    # baselines on Sundays at 02:00 UTC
    "ndvi_baselines": dg.FreshnessPolicy.cron(deadline_cron="0 4 * * 0", lower_bound_delta=dt.timedelta(hours=2)),
    # refreshed at 23:40 UTC, before the nightly run that needs the assignments
    "weather_stations": dg.FreshnessPolicy.cron(deadline_cron="0 0 * * *", lower_bound_delta=dt.timedelta(hours=1)),
}


def with_freshness(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets with the policy named in FRESHNESS attached to each of their keys that has one."""

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = FRESHNESS.get(spec.key.to_user_string())
        return spec.replace_attributes(freshness_policy=policy) if policy else spec

    return [asset.map_asset_specs(attach) for asset in assets]
