"""satellite_order_sensor: follow open Spexi orders and ask for rasters once imagery is ready."""

import datetime as dt
import time

import dagster as dg

from microcrop_assets import settings
from microcrop_assets.defs.imagery import orders as book
from microcrop_assets.defs.imagery.jobs import ndvi_rasters_job
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource

CHECK_INTERVAL_MINUTES = settings.env_int("SATELLITE_PENDING_CHECK_INTERVAL", 15)
DEFAULT_PAGE_SIZE = 2000


def page_size() -> int:
    """Open orders checked per tick (SATELLITE_SENSOR_PAGE_SIZE), read at each evaluation."""
    return settings.env_int("SATELLITE_SENSOR_PAGE_SIZE", DEFAULT_PAGE_SIZE)


@dg.sensor(
    job=ndvi_rasters_job,
    minimum_interval_seconds=CHECK_INTERVAL_MINUTES * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every SATELLITE_PENDING_CHECK_INTERVAL minutes: one page of open orders checked with "
    "Spexi, expired orders closed, one ndvi_rasters run per capture date with newly completed imagery.",
)
def satellite_order_sensor(
    context: dg.SensorEvaluationContext, timescaledb: TimescaleDBResource, spexi: SpexiResource
) -> dg.SensorResult:
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    check = book.check_open_orders(timescaledb, spexi, context.cursor or "", page_size(), now)
    owed = book.raster_run_requests(timescaledb, now)
    context.log.info(
        f"checked {check.checked} open orders (changed {check.changed}, {check.errors} vendor errors, "
        f"{check.expired} expired); {len(owed)} raster runs requested in {time.monotonic() - started:.1f}s"
    )
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=key, partition_key=day) for day, key in sorted(owed.items())],
        cursor=check.next_cursor,
    )
