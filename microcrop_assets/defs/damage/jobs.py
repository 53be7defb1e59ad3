"""Damage jobs: the day's assessments, the stress response (orders + assessment), the archive."""

import dagster as dg

from microcrop_assets.defs.damage.assets import DAMAGE_TAGS, assessment_archive, damage_assessments
from microcrop_assets.defs.shared import MAX_RUNTIME

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

# `satellite_orders` is the imagery domain's asset: selected by key string so the job resolves to
# damage_assessments alone where imagery is absent and to both once the domains are merged
STRESS_RESPONSE_SELECTION = 'key:"satellite_orders" or key:"damage_assessments"'
STRESS_RESPONSE_TAGS = {"microcrop/queue": "priority"}
stress_response_job = dg.define_asset_job(
    "stress_response_job",
    selection=dg.AssetSelection.from_string(STRESS_RESPONSE_SELECTION),
    # orders go out at Spexi's 10 calls/min before the assessment: up to an hour on a wide stress day
    tags={**STRESS_RESPONSE_TAGS, MAX_RUNTIME: "3600"},
    description="Order imagery for a stressed day and assess damage for it.",
)
