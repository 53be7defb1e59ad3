"""Set-up shared by the tests that run the weather chain (weather, faults, exactness, imagery): the
pipeline's resources against the sandbox, and the plots registered with their stations."""

import uuid

import dagster as dg

from microcrop_assets.defs.plots.assets import plots
from microcrop_assets.defs.weather.assets import weather_stations
from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.resources.redis import RedisResource

from .conftest import REDIS_URL
from .fixtures_clients import weatherxm


def chain_resources(sandbox, db, tmp_path) -> dict:
    """The database, a local object store, a fresh Redis namespace and WeatherXM on the sandbox."""
    redis = RedisResource(url=REDIS_URL, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    return {
        "timescaledb": db,
        "object_store": ObjectStoreResource(local_root=str(tmp_path / "objects")),
        "redis": redis,
        "weatherxm": weatherxm(sandbox, redis),
    }


def registered(resources: dict, plots_source: str) -> dict:
    """Plots loaded and stations assigned: what every weather partition starts from."""
    setup = dg.materialize(
        [plots, weather_stations],
        resources=resources,
        run_config={"ops": {"plots": {"config": {"source": plots_source}}}},
    )
    assert setup.success
    return resources
