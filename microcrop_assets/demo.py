"""`microcrop demo`: the pipeline end to end on embedded defaults.

Embedded PostgreSQL, the local object store and the in-process Redis stand in for the services;
the sandbox (with its drought scenario over the Kakamega plots) stands in for WeatherXM, Spexi and
Pinata. Each step is the `dagster asset materialize` command an operator would type; only the
vendor URLs and keys differ from production. The terminal shows one line per asset (partitions,
progress, time); Dagster's full event log goes to a file under MICROCROP_HOME/logs.
"""

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from microcrop_assets import settings
from microcrop_assets.cli import UserError

DEMO_SCENARIO = Path(__file__).parent / "sandbox" / "scenarios" / "drought_kakamega.json"
DEMO_END = dt.date(2025, 7, 31)  # end of the scenario's drought, mid-season for the demo plots

# the demo's own Dagster instance (SQLite under MICROCROP_HOME/dagster), like the top-level dagster.yaml
INSTANCE_YAML = """\
telemetry:
  enabled: false
python_logs:
  managed_python_loggers:
    - microcrop
"""

# Dagster's console log line: "<time> - dagster - <LEVEL> - <job> - <run id> - [<pid> - ][<step> - ]<EVENT> - <text>"
# (user log lines have no event type); only the step and the event or message matter here
_LOG_LINE = re.compile(
    r" - dagster - \w+ - \S+ - [0-9a-f-]{36} - (?:\d+ - )?(?P<step>\w+) - (?:(?P<event>[A-Z_]+) - )?(?P<text>.*)$"
)
_DAY_DONE = re.compile(r"^\d{4}-\d{2}-\d{2}: ")  # weather_readings logs one line per finished day
# "module.ErrorClass: message" lines of the traceback printed after STEP_FAILURE: the first one after
# Dagster's own wrapper is the error the step raised
_ERROR_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*(?P<kind>[A-Za-z_]\w*): (?P<message>.+)$")


class StageProgress:
    """Turns Dagster's event stream into one terminal line per step (asset)."""

    def __init__(self, partitions: str, total_days: int, out: TextIO):
        self.partitions, self.total_days, self.out = partitions, total_days, out
        self.live = out.isatty()  # a terminal gets a line rewritten in place while the step runs
        self.started: dict[str, float] = {}
        self.days_done = 0
        self.failed_step: str | None = None
        self.failure: str | None = None  # the root cause's message, from the traceback lines

    def _label(self, step: str) -> str:
        what = f"{self.total_days} days {self.partitions}" if self.partitions else "unpartitioned"
        return f"  {step:<17} {what:<34}"

    def feed(self, line: str) -> None:
        match = _LOG_LINE.search(line)
        if not match:
            error = _ERROR_LINE.match(line.strip()) if self.failed_step and not self.failure else None
            if error and error["kind"] != "DagsterExecutionStepExecutionError":
                self.failure = f"{error['kind']}: {error['message']}"
            return
        step, event, text = match["step"], match["event"], match["text"]
        if event == "STEP_START":
            self.started[step] = time.monotonic()
            self.days_done = 0
            self._show(f"{self._label(step)} running", final=False)
        elif event == "STEP_SUCCESS":
            self._show(f"{self._label(step)} done in {self._elapsed(step)}", final=True)
        elif event == "STEP_FAILURE":
            self.failed_step = step
            self._show(f"{self._label(step)} FAILED after {self._elapsed(step)}", final=True)
        elif event is None and _DAY_DONE.match(text) and self.total_days:
            self.days_done += 1
            done = f"{self.days_done}/{self.total_days} days"
            self._show(f"{self._label(step)} {done}, {self._elapsed(step)}", final=False)

    def _elapsed(self, step: str) -> str:
        return f"{time.monotonic() - self.started.get(step, time.monotonic()):.1f} s"

    def _show(self, text: str, final: bool) -> None:
        if self.live:
            self.out.write("\r\033[K" + text + ("\n" if final else ""))
            self.out.flush()
        elif final:
            print(text, file=self.out, flush=True)


def _materialize(
    env: dict[str, str], log: TextIO, selection: str, first: dt.date | None = None, last: dt.date | None = None
) -> None:
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "microcrop_assets.definitions"]
    command += ["--select", selection]
    partitions = f"{first}...{last}" if first and last else ""
    if partitions:
        command += ["--partition-range", partitions]
    log.write("$ dagster " + " ".join(command[3:]) + "\n")
    log.flush()
    progress = StageProgress(partitions, (last - first).days + 1 if partitions else 0, sys.stdout)
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        for line in process.stdout:
            log.write(line)
            progress.feed(line)
    log.flush()
    if process.returncode != 0:
        where = f"{progress.failed_step}: " if progress.failed_step else ""
        reason = progress.failure or f"dagster asset materialize exited with code {process.returncode}"
        raise UserError(f"{where}{reason} (full Dagster log: {log.name})")


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

    try:
        last = dt.date.fromisoformat(end) if end else DEMO_END
    except ValueError:
        raise UserError(f"--end {end!r} is not a YYYY-MM-DD date") from None
    if days < 1:
        raise UserError(f"--days {days} must be at least 1")
    first = last - dt.timedelta(days=days - 1)
    home = settings.ensure_home()
    dagster_home = home / "dagster"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    (home / "logs").mkdir(exist_ok=True)
    log_path = home / "logs" / f"demo-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.log"
    began = time.monotonic()
    print(f"MicroCrop demo: the weather chain over {days} days ({first}...{last}), state in {home}")
    print(f"Dagster's full log: {log_path}", flush=True)
    with running_sandbox(scenario=DEMO_SCENARIO) as sandbox, open(log_path, "w") as log:
        print(f"  vendor sandbox (WeatherXM, Spexi, Pinata) at {sandbox.root_url}", flush=True)
        env = {
            **os.environ,
            **sandbox.env,
            "DAGSTER_HOME": str(dagster_home),
            "MICROCROP_HOME": str(home),
            "PYTHONUNBUFFERED": "1",  # Dagster's events reach the progress lines as they happen
            # the simulator has no per-account quota; production keeps the 60/min default
            "WEATHERXM_RATE_LIMIT_PER_MINUTE": "6000",
        }
        _materialize(env, log, "plots,weather_stations")
        _materialize(env, log, "weather_readings,weather_daily,weather_indices", first, last)
    print(f"done in {time.monotonic() - began:.0f} s\n")
    print(f"weather_indices on {last} (drought scenario over the KE-KAK plots):\n{_summary(last)}")
    return 0
