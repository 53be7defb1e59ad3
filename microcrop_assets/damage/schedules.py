"""Damage jobs and schedules: the nightly assessment of yesterday and the archive of old assessments."""

import dagster as dg

from microcrop_assets.damage.assets import DAMAGE_TAGS, assessment_archive, damage_assessments
from microcrop_assets.partitions import day_keyed_schedule
from microcrop_assets.weather.schedules import MAX_RUNTIME

# dagster/max_runtime: a day of assessments is set-based SQL plus one vectorised call (100,000 plots in
# seconds), 900 s; the archive writes, reads back and verifies Parquet objects, 1800 s.

damage_assessments_job = dg.define_asset_job(
    "damage_assessments_job",
    selection=[damage_assessments],
    tags={**DAMAGE_TAGS, MAX_RUNTIME: "900"},
    description="Assess every in-season plot for one UTC day.",
)
assessment_archive_job = dg.define_asset_job(
    "assessment_archive_job",
    selection=[assessment_archive],
    tags={**DAMAGE_TAGS, MAX_RUNTIME: "1800"},
    description="Archive assessments older than 90 days to verified Parquet objects.",
)


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
