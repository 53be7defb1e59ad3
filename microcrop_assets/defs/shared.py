"""What every domain shares: the time partitions (plots are rows inside a partition, never partitions),
the run-time limit tag, and the day-keyed schedule factory."""

import datetime as dt

import dagster as dg

from microcrop_assets import settings

# UTC days; end_offset=1 exposes today's partition for intraday refreshes
daily_partitions = dg.DailyPartitionsDefinition(start_date=settings.start_date(), timezone="UTC", end_offset=1)

# weeks start on Sunday (day_offset=0); end_offset=1 exposes the current week from its Sunday, so its
# NDVI baseline (from the weeks before it) exists while the week's days are assessed
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=settings.start_date(), timezone="UTC", day_offset=0, end_offset=1
)


# When a nightly asset is expected to have been materialized, so the UI flags missing days. Freshness is
# per asset (its latest materialization), not per partition: a daily asset passes when its nightly run
# happened, which is when yesterday's partition was written. The nightly weather run starts at 00:15
# UTC; by 03:00 yesterday's station days and indices exist (satellite orders at 01:00 and daily NDVI at
# 00:15 run for yesterday too).
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=dt.timedelta(hours=3))

# dagster/max_runtime (seconds; run monitoring fails a run past it): each job sets its own, said beside it
MAX_RUNTIME = "dagster/max_runtime"


def day_key(moment: dt.datetime, days_back: int = 0) -> str:
    """The daily partition key of the UTC day `days_back` days before `moment` (any aware datetime:
    schedules pass their tick time)."""
    return (moment.astimezone(dt.UTC).date() - dt.timedelta(days=days_back)).isoformat()


def day_keyed_schedule(
    name: str, job, cron_schedule: str, run_key_prefix: str, days_back: int, description: str
) -> dg.ScheduleDefinition:
    """A UTC schedule (on by default) that runs `job` for the partition keyed by the UTC day `days_back` days before its
    tick, one run key per partition so a repeated tick runs nothing twice."""

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron_schedule,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        key = day_key(context.scheduled_execution_time, days_back)
        return dg.RunRequest(run_key=f"{run_key_prefix}-{key}", partition_key=key)

    return _schedule
