"""`microcrop demo`: the pipeline end to end on embedded defaults.

Embedded PostgreSQL, the local object store and the in-process Redis stand in for the services;
the sandbox (with its drought scenario over the Kakamega plots) stands in for WeatherXM, Spexi and
Pinata. Each step is the `dagster asset materialize` command an operator would type; only the
vendor URLs and keys differ from production.
"""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from microcrop_assets import settings

DEMO_SCENARIO = Path(__file__).parent / "sandbox" / "scenarios" / "drought_kakamega.json"
DEMO_END = dt.date(2025, 7, 31)  # end of the scenario's drought, mid-season for the demo plots


def _materialize(env: dict[str, str], selection: str, partition_range: str | None = None) -> None:
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "microcrop_assets.definitions",
        "--select",
        selection,
    ]
    if partition_range:
        command += ["--partition-range", partition_range]
    print("$ dagster " + " ".join(command[3:]), flush=True)
    subprocess.run(command, check=True, env=env)


def _summary(end: dt.date) -> str:
    from microcrop_assets.resources.timescaledb import TimescaleDBResource

    db = TimescaleDBResource(url=os.environ.get("DATABASE_URL") or None)
    frame = db.read_frame(
        "SELECT plot_id, growth_stage, round(rain_30d_mm::numeric, 1) AS rain_30d_mm,"
        " round(worst_14d_rain_mm::numeric, 1) AS worst_14d_mm, round(drought_stress::numeric, 2) AS drought,"
        " round(weather_stress::numeric, 2) AS weather_stress FROM weather_indices WHERE day = :d ORDER BY plot_id",
        {"d": end},
    )
    return frame.to_string(index=False)


def run_demo(days: int, end: str | None) -> int:
    from microcrop_assets.sandbox.testing import running_sandbox

    last = dt.date.fromisoformat(end) if end else DEMO_END
    first = last - dt.timedelta(days=days - 1)
    dagster_home = settings.home() / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").touch()  # local SQLite instance storage
    with running_sandbox(scenario=DEMO_SCENARIO) as sandbox:
        print(f"sandbox serving WeatherXM, Spexi and Pinata at {sandbox.root_url}", flush=True)
        env = {
            **os.environ,
            **sandbox.env,
            "DAGSTER_HOME": str(dagster_home),
            "MICROCROP_HOME": str(settings.home()),
            # the simulator has no per-account quota; production keeps the 60/min default
            "WEATHERXM_RATE_LIMIT_PER_MINUTE": "6000",
        }
        _materialize(env, "plots,weather_stations")
        _materialize(env, "weather_readings,weather_daily,weather_indices", f"{first}...{last}")
    print(f"\nweather_indices on {last} (drought scenario over the KE-KAK plots):\n{_summary(last)}")
    return 0
