"""Weather schedules: intraday readings, the nightly station-day and index run, stations."""

import datetime as dt

import dagster as dg

from microcrop_assets import settings
from microcrop_assets.defs.shared import day_key
from microcrop_assets.defs.weather import gaps
from microcrop_assets.defs.weather.assets import READINGS_STAGE
from microcrop_assets.defs.weather.jobs import weather_nightly_job, weather_readings_job, weather_stations_job
from microcrop_assets.resources.timescaledb import TimescaleDBResource


@dg.schedule(
    job=weather_readings_job,
    cron_schedule=f"*/{settings.env_int('WEATHER_FETCH_INTERVAL', 5)} * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def weather_readings_intraday(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Today's readings, refreshed every WEATHER_FETCH_INTERVAL minutes (the day's partition is replaced)."""
    return dg.RunRequest(partition_key=day_key(context.scheduled_execution_time))


@dg.schedule(
    job=weather_nightly_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def weather_nightly(context: dg.ScheduleEvaluationContext, timescaledb: TimescaleDBResource) -> dg.RunRequest:
    """Shortly after midnight UTC: yesterday's final readings, station days and indices.

    When a day of the last WEATHER_GAP_REFETCH_DAYS (default 7) has open vendor gaps, the run covers
    the range from the first such day to yesterday instead: those earlier days fetch only their gap
    stations (readings `refetch_gaps`), and station days and indices are recomputed over the whole
    range, so every index whose window holds a refilled day is rebuilt in the same run, after its
    inputs. The run key counts the gaps and their attempts: each night re-runs until they are closed."""
    yesterday = dt.date.fromisoformat(day_key(context.scheduled_execution_time, 1))
    key = yesterday.isoformat()
    days = settings.env_int("WEATHER_GAP_REFETCH_DAYS", 7, minimum=0)
    # the gaps of the days before yesterday (yesterday is fetched whole anyway)
    since = yesterday - dt.timedelta(days=days - 1)
    open_gaps = gaps.open_gaps(timescaledb, READINGS_STAGE, since, yesterday - dt.timedelta(days=1))
    if open_gaps.empty:
        return dg.RunRequest(run_key=f"weather-nightly-{key}", partition_key=key)
    first = min(open_gaps["day"]).isoformat()
    return dg.RunRequest(
        run_key=f"weather-nightly-{key}-gaps-from-{first}-{len(open_gaps)}-{int(open_gaps['attempts'].sum())}",
        run_config={"ops": {"weather_readings": {"config": {"refetch_gaps": True}}}},
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": key},
    )


weather_stations_daily = dg.ScheduleDefinition(
    name="weather_stations_daily",
    job=weather_stations_job,
    cron_schedule="40 23 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Station catalogue and assignments, refreshed before the nightly run.",
)
