import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.definitions import defs
from microcrop_assets.defs.shared import daily_partitions, weekly_partitions
from microcrop_assets.deployment.pools import POOL_LIMITS, apply_pool_limits

ROOT = Path(__file__).parents[1]


@pytest.mark.unit
def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    assert {"timescaledb", "object_store", "redis"} <= set(defs.resources)


@pytest.mark.unit
def test_daily_partitions_include_today_and_weeks_start_on_sunday():
    # a fixed "now" on both sides of midnight UTC (the wall clock made this fail around midnight)
    for now, today in (
        (dt.datetime(2025, 7, 31, 23, 59, 59, tzinfo=dt.UTC), "2025-07-31"),
        (dt.datetime(2025, 8, 1, 0, 0, 1, tzinfo=dt.UTC), "2025-08-01"),
    ):
        keys = daily_partitions.get_partition_keys(current_time=now)
        assert keys[0] == "2025-01-01" and keys[-1] == today
    weeks = weekly_partitions.get_partition_keys(current_time=dt.datetime(2025, 8, 1, tzinfo=dt.UTC))
    # the week starting on a Sunday exists from that day (end_offset=1): its baseline is computed then
    assert weeks[0] == "2025-01-05" and weeks[-1] == "2025-07-27"
    assert all(dt.date.fromisoformat(k).weekday() == 6 for k in weeks)


@pytest.mark.integration
def test_dagster_yaml_runs_on_postgres(tmp_path, monkeypatch, db, database_url):
    """The deployed instance config loads and its storage works (psycopg2 scheme fix included)."""
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    admin = sa.make_url(database_url)  # shares the database with our tables: separate version tables
    monkeypatch.setenv("DAGSTER_PG_HOST", admin.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(admin.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", admin.database)
    monkeypatch.setenv("DAGSTER_PG_USERNAME", admin.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", admin.password or "")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        instance.get_runs(limit=1)
        assert instance.run_monitoring_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_max_runtime_seconds == 14400
        # the original queues, parsed as run tag limits, and the pool defaults
        queue = instance.get_concurrency_config().run_queue_config
        limits = {limit["value"]: limit["limit"] for limit in queue.tag_concurrency_limits}
        assert {limit["key"] for limit in queue.tag_concurrency_limits} == {"microcrop/queue"}
        assert limits == {"default": 3, "weather": 3, "satellite": 2, "damage": 2, "priority": 2}
        assert queue.max_concurrent_runs == 10
        assert instance.event_log_storage.get_pool_config().default_pool_limit == 1
        # named pool limits live in the instance database: applied, then read back from it
        assert apply_pool_limits(instance) == POOL_LIMITS
        assert instance.event_log_storage.get_concurrency_info("satellite").slot_count == POOL_LIMITS["satellite"]
        assert set(POOL_LIMITS) >= set(limits)  # every queue is also a pool
    with db.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"runs", "alembic_version", "microcrop_schema_version", "plots"} <= tables


@pytest.mark.unit
def test_every_job_has_a_queue_and_a_max_runtime_within_the_backstop():
    """Run monitoring needs dagster/max_runtime per job (else the instance backstop applies)."""
    jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert jobs
    for job in jobs:
        assert job.tags.get("microcrop/queue") in {"default", "weather", "satellite", "damage", "priority"}, job.name
        assert 0 < int(job.tags["dagster/max_runtime"]) <= 14400, job.name
    assert {job.name: job.tags["dagster/max_runtime"] for job in jobs if job.name.startswith("weather")} == {
        "weather_readings_job": "600",
        "weather_nightly_job": "3600",
        "weather_stations_job": "900",
    }


@pytest.mark.unit
def test_daily_assets_carry_freshness_policies_and_ops_sensors_are_on():
    graph = defs.resolve_asset_graph()
    policies = {key.to_user_string(): graph.get(key).freshness_policy for key in graph.get_all_asset_keys()}
    nightly = policies["weather_daily"]
    assert nightly.deadline_cron == "0 3 * * *" and nightly.lower_bound_delta == dt.timedelta(hours=3)
    assert policies["weather_indices"] == nightly
    assert policies["weather_readings"].fail_window.to_timedelta() == dt.timedelta(minutes=15)
    assert policies["weather_stations"] is not None
    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert sensors["service_health_sensor"].minimum_interval_seconds == 60
    for name in ("service_health_sensor", "run_failure_alert"):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING


@pytest.mark.unit
def test_pipeline_page_names_every_definition():
    """The "at a glance" tables of docs/pipeline.md cannot drift from the definitions: every asset, check,
    job, schedule and sensor Dagster shows is named in them."""
    glance = (ROOT / "docs" / "pipeline.md").read_text().split("## At a glance")[1].split("\n## ")[0]
    repository = defs.get_repository_def()
    names = [key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()]
    names += [key.name for key in repository.asset_graph.asset_check_keys]
    names += [job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    names += [schedule.name for schedule in repository.schedule_defs]
    names += [sensor.name for sensor in repository.sensor_defs]
    assert [name for name in names if f"`{name}`" not in glance] == []


@pytest.mark.integration
def test_resolving_the_jobs_warns_of_nothing_a_user_cannot_act_on():
    """A fresh process with every warning shown: resolving stress_response_job (one stressed day per
    run, two assets whose backfill policies cannot matter) and the partitioned assets prints nothing."""
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            "from microcrop_assets.definitions import defs\n"
            "for job in ('stress_response_job', 'damage_assessments_job', 'weather_nightly_job'):\n"
            "    defs.resolve_job_def(job)\n",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "varying BackfillPolicies" not in done.stderr and "BetaWarning" not in done.stderr, done.stderr


@pytest.mark.unit
def test_a_weeks_baseline_depends_on_the_daily_ndvi_of_the_nine_weeks_before_it():
    """The 60-day baseline window of the week starting 2025-06-01 lies in the nine whole weeks before it
    (a positive start offset once mapped the week to no day at all)."""
    graph = defs.resolve_asset_graph()
    mapping = graph.get_partition_mapping(dg.AssetKey("ndvi_baselines"), dg.AssetKey("daily_ndvi"))
    week = weekly_partitions.subset_with_partition_keys(["2025-06-01"])
    days = mapping.get_upstream_mapped_partitions_result_for_partitions(week, weekly_partitions, daily_partitions)
    keys = days.partitions_subset.get_partition_keys()
    assert (len(keys), keys[0], keys[-1]) == (63, "2025-03-30", "2025-05-31")
