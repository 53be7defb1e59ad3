"""Time partitions shared by every domain: plots are rows inside a partition, never partitions."""

import dagster as dg

from microcrop_assets import settings

# UTC days; end_offset=1 exposes today's partition for intraday refreshes
daily_partitions = dg.DailyPartitionsDefinition(start_date=settings.start_date(), timezone="UTC", end_offset=1)

# weeks start on Sunday (day_offset=0)
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=settings.start_date(), timezone="UTC", day_offset=0)
