"""Time partitions shared by every domain: plots are rows inside a partition, never partitions."""

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


def day_key(moment: dt.datetime, days_back: int = 0) -> str:
    """The daily partition key of the UTC day `days_back` days before `moment` (any aware datetime:
    schedules pass their tick time)."""
    return (moment.astimezone(dt.UTC).date() - dt.timedelta(days=days_back)).isoformat()
