"""`microcrop demo`: the pipeline end to end on embedded defaults.

Embedded PostgreSQL, the local object store and the in-process Redis stand in for the services;
the sandbox stands in for WeatherXM, Spexi and Pinata. Each step is the same
`dagster asset materialize` command an operator would type.
"""

import os
import subprocess
import sys

from microcrop_assets import settings


def _materialize(selection: str, partition_range: str | None = None) -> None:
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
    print("$ " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def run_demo(days: int, end: str | None) -> int:
    dagster_home = settings.home() / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(dagster_home))
    _materialize("plots")
    return 0
