"""Damage schedules: the nightly assessment of yesterday and the archive of old assessments."""

import dagster as dg

from microcrop_assets.defs.damage.jobs import assessment_archive_job, damage_assessments_job
from microcrop_assets.defs.shared import day_keyed_schedule

damage_nightly = day_keyed_schedule(
    "damage_nightly",
    damage_assessments_job,
    "30 1 * * *",
    "damage-nightly",
    days_back=1,
    description="After the nightly weather run (00:15 UTC): yesterday's assessments for every in-season plot.",
)


assessment_archive_nightly = dg.ScheduleDefinition(
    name="assessment_archive_nightly",
    job=assessment_archive_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Assessments completed more than 90 days ago to Parquet, verified, then marked archived.",
)
