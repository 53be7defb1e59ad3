"""The resources every asset, sensor and schedule uses, bound once from the environment: each unset
setting takes its embedded default (docs/configuration.md)."""

import os

import dagster as dg

from microcrop_assets import settings
from microcrop_assets.resources.chain import ChainResource
from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.resources.pinata import PinataResource
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.resources.weatherxm import WeatherXMResource


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
        "object_store": ObjectStoreResource(
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
