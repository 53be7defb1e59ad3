"""Weather jobs and schedules: intraday readings, the nightly station-day and index run, stations."""

import datetime as dt

import dagster as dg

from microcrop_assets import gaps, settings
from microcrop_assets.partitions import day_key
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.weather.assets import (
    READINGS_STAGE,
    weather_daily,
    weather_indices,
    weather_readings,
    weather_stations,
)

WEATHER_TAGS = {"microcrop/queue": "weather"}
# dagster/max_runtime (seconds; run monitoring fails a run past it): the original's 600 s per task,
# per job here. Intraday readings: 600 s, a later tick refreshes the same day anyway. Nightly: every
# station's full day at the shared vendor rate limit plus the indices, 3600 s. Stations: one call
# per occupied 1-degree cell, 900 s.
MAX_RUNTIME = "dagster/max_runtime"

weather_readings_job = dg.define_asset_job(
    "weather_readings_job",
    selection=[weather_readings],
    tags={**WEATHER_TAGS, MAX_RUNTIME: "600"},
    description="Fetch one UTC day of readings from every assigned WeatherXM station.",
)
weather_nightly_job = dg.define_asset_job(
    "weather_nightly_job",
    selection=[weather_readings, weather_daily, weather_indices],
    tags={**WEATHER_TAGS, MAX_RUNTIME: "3600"},
    description="Complete a finished UTC day: its readings, station days and plot indices.",
)
weather_stations_job = dg.define_asset_job(
    "weather_stations_job",
    selection=[weather_stations],
    tags={**WEATHER_TAGS, MAX_RUNTIME: "900"},
    description="Refresh the station catalogue and plot-to-station assignments.",
)


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
