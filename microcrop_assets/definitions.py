"""The one Definitions of the project: assets, checks, schedules, sensors, jobs and resources."""

import os

import dagster as dg

from microcrop_assets.plots.assets import plots
from microcrop_assets.resources.minio import ObjectStoreResource
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource


def env(name: str) -> dg.EnvVar | None:
    """An EnvVar when set (resolved at run time, never shown in config), else None for the default."""
    return dg.EnvVar(name) if os.environ.get(name) else None


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
    }


defs = dg.Definitions(
    assets=[plots],
    resources=build_resources(),
)
