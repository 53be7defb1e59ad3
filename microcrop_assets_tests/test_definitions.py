import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from microcrop_assets.definitions import defs
from microcrop_assets.partitions import daily_partitions, weekly_partitions

ROOT = Path(__file__).parents[1]


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    assert {"timescaledb", "minio", "redis"} <= set(defs.resources)


def test_daily_partitions_include_today_and_weeks_start_on_sunday():
    # a fixed "now" on both sides of midnight UTC (the wall clock made this fail around midnight)
    for now, today in (
        (dt.datetime(2025, 7, 31, 23, 59, 59, tzinfo=dt.UTC), "2025-07-31"),
        (dt.datetime(2025, 8, 1, 0, 0, 1, tzinfo=dt.UTC), "2025-08-01"),
    ):
        keys = daily_partitions.get_partition_keys(current_time=now)
        assert keys[0] == "2025-01-01" and keys[-1] == today
    weeks = weekly_partitions.get_partition_keys(current_time=dt.datetime(2025, 8, 1, tzinfo=dt.UTC))
    assert weeks[0] == "2025-01-05" and weeks[-1] == "2025-07-20"  # complete weeks only: 07-27 ends 08-03
    assert all(dt.date.fromisoformat(k).weekday() == 6 for k in weeks)


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
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        instance.get_runs(limit=1)
        assert instance.run_monitoring_enabled and instance.run_retries_max_retries == 2
    with db.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"runs", "alembic_version", "microcrop_schema_version", "plots"} <= tables
