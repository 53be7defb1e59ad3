"""The one Definitions of the project: assets, checks, schedules, sensors, jobs and resources."""

import os

import dagster as dg

from microcrop_assets import settings
from microcrop_assets.damage.assets import assessment_archive, damage_assessments
from microcrop_assets.damage.schedules import (
    assessment_archive_job,
    assessment_archive_nightly,
    damage_assessments_job,
    damage_nightly,
)
from microcrop_assets.damage.sensors import stress_response_job, stress_trigger_sensor
from microcrop_assets.imagery.assets import daily_ndvi, ndvi_baselines, ndvi_rasters, satellite_orders
from microcrop_assets.imagery.schedules import (
    daily_ndvi_job,
    daily_ndvi_nightly,
    ndvi_baselines_job,
    ndvi_baselines_weekly,
    ndvi_rasters_job,
    satellite_orders_daily,
    satellite_orders_job,
)
from microcrop_assets.imagery.sensors import satellite_order_sensor
from microcrop_assets.ops.freshness import with_freshness
from microcrop_assets.ops.sensors import pipeline_health, run_failure_alert, service_health_sensor
from microcrop_assets.payouts.assets import (
    payout_proofs,
    payout_proofs_job,
    payout_proofs_nightly,
    payouts,
    payouts_every_interval,
    payouts_job,
)
from microcrop_assets.plots.assets import plots
from microcrop_assets.resources.chain import ChainResource
from microcrop_assets.resources.minio import ObjectStoreResource
from microcrop_assets.resources.pinata import PinataResource
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.resources.weatherxm import WeatherXMResource
from microcrop_assets.weather.assets import weather_daily, weather_indices, weather_readings, weather_stations
from microcrop_assets.weather.schedules import (
    weather_nightly,
    weather_nightly_job,
    weather_readings_intraday,
    weather_readings_job,
    weather_stations_daily,
    weather_stations_job,
)


def env(name: str) -> dg.EnvVar | None:
    """An EnvVar when set (resolved at run time, never shown in config), else None for the default."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def set_only(**values) -> dict:
    """Keyword arguments without the unset ones, so the resource's own defaults apply."""
    return {key: value for key, value in values.items() if value is not None}


def build_resources() -> dict[str, dg.ConfigurableResource]:
    redis = RedisResource(url=env("REDIS_URL"))
    return {
        "timescaledb": TimescaleDBResource(url=env("DATABASE_URL")),
        "minio": ObjectStoreResource(
            endpoint=env("MINIO_ENDPOINT"),
            access_key=env("MINIO_ACCESS_KEY"),
            secret_key=env("MINIO_SECRET_KEY"),
            bucket=os.environ.get("MINIO_BUCKET") or "microcrop",
        ),
        "redis": redis,
        # keys are EnvVars even when unset: a run that needs a vendor fails naming the missing variable
        "weatherxm": WeatherXMResource(
            redis=redis,
            api_key=dg.EnvVar("WEATHERXM_API_KEY"),
            rate_limit_per_minute=settings.env_int("WEATHERXM_RATE_LIMIT_PER_MINUTE", 60),
            **set_only(api_url=env("WEATHERXM_API_URL")),
        ),
        "spexi": SpexiResource(
            redis=redis,
            api_key=dg.EnvVar("SPEXI_API_KEY"),
            rate_limit_per_minute=settings.env_int("SPEXI_RATE_LIMIT_PER_MINUTE", 10),
            **set_only(api_url=env("SPEXI_API_URL"), order_statuses_path=os.environ.get("SPEXI_ORDER_STATUSES_PATH")),
        ),
        "pinata": PinataResource(
            redis=redis,
            rate_limit_per_minute=settings.env_int("PINATA_RATE_LIMIT_PER_MINUTE", 60),
            **set_only(
                jwt=env("PINATA_JWT"),
                api_url=env("PINATA_API_URL"),
                uploads_url=env("PINATA_UPLOADS_URL"),
                gateway_url=env("PINATA_GATEWAY"),
            ),
        ),
        # any of the four unset: no chain, payouts wait in the ledger with that reason
        "chain": ChainResource(
            **set_only(
                rpc_url=env("BASE_RPC_URL"),
                chain_id=dg.EnvVar.int("BASE_CHAIN_ID") if os.environ.get("BASE_CHAIN_ID") else None,
                private_key=env("ORACLE_PRIVATE_KEY"),
                # deployed: only payouts_job's runs have it (payouts/assets.py, ORACLE_KEY_TAGS)
                private_key_file=env("ORACLE_PRIVATE_KEY_FILE"),
                receiver_address=env("PAYOUT_RECEIVER_ADDRESS"),
            )
        ),
    }


defs = dg.Definitions(
    assets=[
        plots,
        *with_freshness(
            [
                weather_stations,
                weather_readings,
                weather_daily,
                weather_indices,
                satellite_orders,
                ndvi_rasters,
                daily_ndvi,
                ndvi_baselines,
                damage_assessments,
                assessment_archive,
                payout_proofs,
                payouts,
            ]
        ),
        pipeline_health,
    ],
    jobs=[
        weather_readings_job,
        weather_nightly_job,
        weather_stations_job,
        satellite_orders_job,
        ndvi_rasters_job,
        daily_ndvi_job,
        ndvi_baselines_job,
        damage_assessments_job,
        stress_response_job,
        assessment_archive_job,
        payout_proofs_job,
        payouts_job,
    ],
    schedules=[
        weather_readings_intraday,
        weather_nightly,
        weather_stations_daily,
        satellite_orders_daily,
        daily_ndvi_nightly,
        ndvi_baselines_weekly,
        damage_nightly,
        assessment_archive_nightly,
        payout_proofs_nightly,
        payouts_every_interval,
    ],
    sensors=[satellite_order_sensor, stress_trigger_sensor, service_health_sensor, run_failure_alert],
    resources=build_resources(),
)
