"""Stress trigger: a weather_indices day with high stress requests imagery and a damage assessment."""

import datetime as dt
import hashlib

import dagster as dg

from microcrop_assets import settings
from microcrop_assets.defs.damage.jobs import stress_response_job
from microcrop_assets.resources.timescaledb import TimescaleDBResource

WEATHER_INDICES = dg.AssetKey("weather_indices")
PAGE = 100  # materialization events read per tick: ticks stay far below the 60 s sensor limit


# plots of the day at or above their policy's stress trigger that have no assessment in the last N days
_STRESSED_SQL = """
SELECT w.plot_id FROM weather_indices w JOIN plots p ON p.plot_id = w.plot_id
WHERE w.day = :day AND w.in_season AND p.active
  AND w.weather_stress >= (p.policy_terms ->> 'stress_trigger')::float8
  AND NOT EXISTS (
    SELECT 1 FROM damage_assessments d
    WHERE d.plot_id = w.plot_id AND d.day > :day - :recent_days AND d.day <= :day
  )
ORDER BY w.plot_id
"""


def stressed_plots(timescaledb: TimescaleDBResource, day: dt.date, recent_days: int) -> list[str]:
    return timescaledb.read_frame(_STRESSED_SQL, {"day": day, "recent_days": recent_days})["plot_id"].tolist()


@dg.sensor(
    job=stress_response_job,
    minimum_interval_seconds=60 * settings.env_int("WEATHER_TRIGGER_CHECK_INTERVAL", 15),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def stress_trigger_sensor(context: dg.SensorEvaluationContext, timescaledb: TimescaleDBResource) -> dg.SensorResult:
    """After weather_indices days materialize: one run per day whose stressed plots lack a recent assessment.

    The run (imagery orders and the day's damage assessments, every plot of the day in bulk) is keyed
    by the day and the set of stressed plots, so a second tick over the same day is a no-op and a day
    that gains stressed plots later gets one more run. N = STRESS_REASSESS_DAYS (default 7).
    """
    recent_days = settings.env_int("STRESS_REASSESS_DAYS", 7)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=WEATHER_INDICES, after_storage_id=int(context.cursor or 0)),
        limit=PAGE,
        ascending=True,
    ).records
    if not records:
        return dg.SensorResult(skip_reason="no new weather_indices materializations")
    days = sorted({record.partition_key for record in records if record.partition_key})
    requests = []
    for key in days:
        plot_ids = stressed_plots(timescaledb, dt.date.fromisoformat(key), recent_days)
        if not plot_ids:
            continue
        digest = hashlib.sha256("\n".join(plot_ids).encode()).hexdigest()[:16]
        requests.append(
            dg.RunRequest(
                run_key=f"stress-response-{key}-{digest}",
                partition_key=key,
                tags={"microcrop/stressed_plots": str(len(plot_ids)), "microcrop/stressed_plots_sha256": digest},
            )
        )
        context.log.info(f"{key}: {len(plot_ids)} stressed plot(s) without an assessment in {recent_days} days")
    return dg.SensorResult(run_requests=requests, cursor=str(records[-1].storage_id))
