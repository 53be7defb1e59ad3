"""The season demo: a whole growing season through the pipeline, decided by its own sensors.

A scenario file (events plus a `season` window) and a plots file describe the season. The vendor
sandbox serves them on a manual clock that follows the simulated days. The demo works week by week,
the way production would after each night:

1. the weather chain for the week, as one single-run backfill;
2. `stress_trigger_sensor` is evaluated (its own function, its own cursor): each run it requests
   (imagery orders and damage assessments for a stressed day) is executed;
3. the `satellite_orders_daily` schedule's runs place the routine and stress orders of each day;
4. the clock moves on a day, so the sandbox completes the orders; `satellite_order_sensor` is
   evaluated and each `ndvi_rasters` run it asks for (per capture date) is executed;
5. `ndvi_baselines_weekly` for the Sundays of the week; the week's damage assessments as one
   single-run backfill (the nightly schedule's job); `payout_proofs` per day; `payouts`.

Runs execute in this process against a persistent Dagster instance under
MICROCROP_HOME/season/dagster (open it with `dagster dev` afterwards to browse every run), in a fresh
database `<database>_season` beside the configured one (never the pipeline's own tables),
with payouts sent to an in-process test chain (py-evm) where the receiver contract is deployed first
and the season's policies are registered on it by its admin once the plots are loaded.
"""

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa

from microcrop_assets import settings
from microcrop_assets.sandbox.scenario import ScenarioError, load_scenario
from microcrop_assets.season.files import SEASON_PLOTS_FILE
from microcrop_assets.season.plot_generator import region_of, subset

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "sandbox" / "scenarios" / "season_2025.json"
SPIN_UP_DAYS = 30  # weather before the season, so its first 30-day indices are whole
WINDOW_DAYS = 7
ORDER_DELAY_S = 6 * 3600  # the sandbox completes an order six hours after it is placed
INSTANCE_URL_ENV = "MICROCROP_SEASON_DAGSTER_PG_URL"
STATION_COUNT = 24  # five around each region's plots, the rest scattered (the weather runs scale with it)
# throwaway keys for the in-process test chain only (never real accounts)
DEMO_ORACLE_KEY = "0x" + hashlib.sha256(b"microcrop season demo oracle (in-process test chain)").hexdigest()
DEMO_ADMIN_KEY = "0x" + hashlib.sha256(b"microcrop season demo receiver admin (in-process test chain)").hexdigest()
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# the terminal shows stages; every run's full event log stays in the instance (dagster dev shows it)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# 1 m imagery instead of the production default of 0.5 m: a quarter of the pixels to render and
# process, still about a hundred pixels across a plot
ORDER_CONFIG = {"ops": {"satellite_orders": {"config": {"resolution_meters": 1.0}}}}
JOB_CONFIG = {"satellite_orders_job": ORDER_CONFIG, "stress_response_job": ORDER_CONFIG}


class SeasonError(ValueError):
    """A season the demo cannot run (bad scenario window, plot count...), naming the value."""


@dataclasses.dataclass(frozen=True)
class Season:
    scenario_path: Path
    name: str
    first: dt.date
    last: dt.date
    plots: dict  # GeoJSON FeatureCollection

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def weather_from(self) -> dt.date:
        """First day of weather: the earliest sowing (the season-to-date indices need every day since)
        or SPIN_UP_DAYS before the season, whichever comes first."""
        sowing = min(dt.date.fromisoformat(f["properties"]["sowing_date"]) for f in self.plots["features"])
        return min(sowing, self.first - dt.timedelta(days=SPIN_UP_DAYS))

    @property
    def regions(self) -> list[str]:
        return sorted({region_of(f["properties"]["plot_id"]) for f in self.plots["features"]})


def load_season(scenario: str | Path | None = None, days: int | None = None, plots: int | None = None) -> Season:
    """The season of a scenario file (its `season`: start and days), shortened by `days` (from the
    start) and `plots` (round-robin over the regions of the season plots)."""
    path = Path(scenario) if scenario else DEFAULT_SCENARIO
    load_scenario(path)  # events checked (ScenarioError names the file and the event)
    document = json.loads(path.read_text(encoding="utf-8"))
    window = document.get("season")
    if not isinstance(window, dict):
        raise ScenarioError(f'scenario file {str(path)!r} has no "season": {{"start": "YYYY-MM-DD", "days": N}}')
    try:
        first = dt.date.fromisoformat(window["start"])
        length = int(window["days"])
    except (KeyError, TypeError, ValueError):
        raise ScenarioError(f"scenario file {str(path)!r}: season={window!r} needs start (YYYY-MM-DD), days") from None
    if days is not None:
        if not 1 <= days <= length:
            raise SeasonError(f"--days {days}: the scenario's season has {length} days (1..{length})")
        length = days
    everything = json.loads(SEASON_PLOTS_FILE.read_text(encoding="utf-8"))
    total = len(everything["features"])
    if plots is not None and not 1 <= plots <= total:
        raise SeasonError(f"--plots {plots}: the season has {total} plots (1..{total})")
    chosen = subset(everything, plots) if plots is not None else everything
    season = Season(path, document.get("name") or path.stem, first, first + dt.timedelta(days=length - 1), chosen)
    start = dt.date.fromisoformat(settings.start_date())
    if season.weather_from < start:
        raise SeasonError(
            f"the season in {str(path)!r} needs weather from {season.weather_from}, before MICROCROP_START_DATE {start}"
        )
    return season


@dataclasses.dataclass
class SeasonRun:
    """Where a finished season demo left its state."""

    season: Season
    home: Path
    database_url: str
    dagster_home: Path
    gateway_url: str
    object_root: Path | None
    sandbox_config: Any
    seconds: float = 0.0
    runs: int = 0


class Progress:
    """One terminal line per stage: what ran, how many runs, how long."""

    def __init__(self, out: TextIO):
        self.out = out
        self.began = time.monotonic()

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[dict]:
        started = time.monotonic()
        notes: dict[str, Any] = {}
        yield notes
        detail = ", ".join(f"{value} {key}" for key, value in notes.items())
        line = f"  {label:<34} {detail}"
        print(f"{line:<118} {time.monotonic() - started:6.1f} s", file=self.out, flush=True)


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """The demo's settings for the runs of this process, the caller's environment restored after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def fresh_database(server_url: str) -> str:
    """Drop and create the season's database beside the configured one (`<name>_season`: the
    pipeline's own tables are never touched); its URL."""
    from microcrop_assets.resources.timescaledb import normalise_url

    url = sa.engine.make_url(normalise_url(server_url))
    name = f"{url.database}_season"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def write_instance(dagster_home: Path, database_url: str) -> dict[str, str]:
    """The demo's Dagster instance: runs and events in the season database (PostgreSQL storage:
    SQLite's per-run event files cost about a second per run), local files under dagster_home.

    A URL with a password stays out of the file: the instance reads it from INSTANCE_URL_ENV, which
    is returned to be set for the demo's process."""
    url = sa.engine.make_url(database_url).set(drivername="postgresql+psycopg2")
    environ = {INSTANCE_URL_ENV: url.render_as_string(hide_password=False)} if url.password else {}
    instance = {
        "telemetry": {"enabled": False},
        "storage": {
            "postgres": {
                "postgres_url": {"env": INSTANCE_URL_ENV} if environ else url.render_as_string(hide_password=False)
            }
        },
        "local_artifact_storage": {
            "module": "dagster._core.storage.root",
            "class": "LocalArtifactStorage",
            "config": {"base_dir": str(dagster_home)},
        },
    }
    (dagster_home / "dagster.yaml").write_text(json.dumps(instance, indent=1), encoding="utf-8")  # JSON is YAML
    return environ


def _test_chain():
    """An in-process chain (eth-tester, py-evm) with a funded oracle and admin, and the receiver deployed
    (a ChainResource of the oracle; the admin's key stays out of the runs' environment)."""
    from eth_account import Account
    from web3 import Web3

    with warnings.catch_warnings():  # eth_tester resets the warning filters to "default" on import
        from web3.providers.eth_tester import EthereumTesterProvider

    from microcrop_assets.resources.chain import ChainResource

    provider = EthereumTesterProvider()
    web3 = Web3(provider)
    oracle, admin = (Account.from_key(key).address for key in (DEMO_ORACLE_KEY, DEMO_ADMIN_KEY))
    for account in (oracle, admin):
        web3.eth.send_transaction({"from": web3.eth.accounts[0], "to": account, "value": 10**20})
    chain = ChainResource.in_process(provider, chain_id=web3.eth.chain_id, private_key=DEMO_ORACLE_KEY)
    return chain.with_receiver(chain.deploy_receiver(admin))


def _chain_environ(chain) -> dict[str, str]:
    return {
        "BASE_RPC_URL": chain.rpc_url,
        "BASE_CHAIN_ID": str(chain.chain_id),
        "ORACLE_PRIVATE_KEY": chain.private_key,
        "PAYOUT_RECEIVER_ADDRESS": chain.receiver_address,
    }


def _register_policies(chain, database_url: str) -> int:
    """The season's policies registered on the receiver by its admin, as `microcrop chain
    register-policies` does in production; how many."""
    from microcrop_assets.defs.payouts.registration import register_policies
    from microcrop_assets.resources.timescaledb import TimescaleDBResource

    db = TimescaleDBResource(url=database_url, migrate=False)
    try:
        summary = register_policies(db, chain.admin(DEMO_ADMIN_KEY))
    finally:
        db.engine.dispose()
    if summary.refused:
        raise SeasonError(f"the receiver refused {len(summary.refused)} season policies: {summary.refused}")
    return len(summary.registered)


class Runner:
    """Executes run requests in this process against one persistent Dagster instance."""

    def __init__(self, defs, instance):
        self.defs, self.instance = defs, instance
        self.done: set[str] = set()
        self.runs = 0
        self.resources = defs.resources

    def job(self, name: str, partition_key: str | None = None, tags: dict | None = None) -> None:
        self.defs.resolve_job_def(name).execute_in_process(
            run_config={**QUIET, **JOB_CONFIG.get(name, {})},
            instance=self.instance,
            partition_key=partition_key,
            tags=tags or {},
        )
        self.runs += 1

    def backfill(self, name: str, first: dt.date, last: dt.date) -> None:
        """A single-run backfill of the job's daily partitions [first, last]."""
        self.job(name, tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()})

    def requests(self, job_name: str, run_requests) -> int:
        """Execute run requests (a sensor's or a schedule's); a run key already executed is skipped,
        as the daemon would."""
        executed = 0
        for request in run_requests:
            if request.run_key and request.run_key in self.done:
                continue
            tags = dict(request.tags or {})
            if request.run_key:
                tags["dagster/run_key"] = request.run_key
                self.done.add(request.run_key)
            self.job(request.job_name or job_name, request.partition_key, tags)
            executed += 1
        return executed

    def sensor(self, sensor_def, cursor: str | None) -> tuple[list, str | None]:
        """One tick of the sensor's own evaluation: its run requests and new cursor."""
        import dagster as dg

        # the tick's logger prints to the stderr of the moment it is created: its lines go to the
        # "dagster" Python logger instead (the demo writes that to its log file), like a daemon's tick log
        captured = io.StringIO()
        with (
            contextlib.redirect_stderr(captured),
            dg.build_sensor_context(instance=self.instance, cursor=cursor, resources=self.resources) as context,
        ):
            result = sensor_def(context)
        if captured.getvalue():
            logging.getLogger("dagster").info(captured.getvalue().rstrip())
        return list(result.run_requests or []), result.cursor if result.cursor is not None else cursor

    def schedule(self, schedule_def, when: dt.datetime) -> list:
        import dagster as dg

        context = dg.build_schedule_context(instance=self.instance, scheduled_execution_time=when)
        result = schedule_def(context)
        return result if isinstance(result, list) else [result]


def _windows(first: dt.date, last: dt.date, size: int) -> Iterator[tuple[dt.date, dt.date]]:
    start = first
    while start <= last:
        end = min(start + dt.timedelta(days=size - 1), last)
        yield start, end
        start = end + dt.timedelta(days=1)


def _days_to_prove(db_url: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """Days of the window with triggered assessments still unproven: the nightly proof schedule's
    runs for the other days would find nothing to pin, so the demo skips them."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT DISTINCT day FROM damage_assessments WHERE triggered AND proof_cid IS NULL"
                        " AND day BETWEEN :first AND :last ORDER BY day"
                    ),
                    {"first": first, "last": last},
                ).scalars()
            )
    finally:
        engine.dispose()


def _counts(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = (
                conn.execute(
                    sa.text(
                        "SELECT (SELECT count(*) FROM satellite_orders WHERE order_id IS NOT NULL) AS orders,"
                        " (SELECT count(*) FROM plot_ndvi_observations) AS images,"
                        " (SELECT count(DISTINCT plot_id) FROM damage_assessments WHERE triggered) AS triggered,"
                        " (SELECT count(*) FROM damage_assessments WHERE proof_cid IS NOT NULL) AS proofs,"
                        " (SELECT count(*) FROM payouts WHERE status = 'confirmed') AS confirmed"
                    )
                )
                .mappings()
                .one()
            )
        return dict(row)
    finally:
        engine.dispose()


def run_season(season: Season, out: TextIO = sys.stdout) -> SeasonRun:
    """Run the season through the pipeline (see the module docstring); the state it left."""
    from microcrop_assets.resources.timescaledb import embedded_database_url
    from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

    progress = Progress(out)
    home = settings.ensure_home()
    state = home / "season"
    shutil.rmtree(state, ignore_errors=True)
    dagster_home = state / "dagster"
    dagster_home.mkdir(parents=True)
    plots_file = state / "plots.geojson"
    plots_file.write_text(json.dumps(season.plots), encoding="utf-8")
    bucket = "microcrop-season"
    object_root = None if os.environ.get("MINIO_ENDPOINT") else home / "objects" / bucket
    if object_root is not None:
        shutil.rmtree(object_root, ignore_errors=True)
    spin_up = season.weather_from
    clock = ManualClock(dt.datetime.combine(season.first, dt.time(1), tzinfo=dt.UTC))
    print(
        f"MicroCrop season demo: {len(season.plots['features'])} plots in {len(season.regions)} regions"
        f" ({', '.join(season.regions)}), {season.days} days {season.first}...{season.last},"
        f" scenario {season.name}; state in {state}",
        file=out,
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        with progress.stage("database, sandbox, test chain") as notes:
            database_url = fresh_database(os.environ.get("DATABASE_URL") or embedded_database_url())
            instance_environ = write_instance(dagster_home, database_url)
            sandbox = stack.enter_context(
                running_sandbox(
                    scenario=season.scenario_path,
                    plots_file=plots_file,
                    clock=clock,
                    order_delay_s=ORDER_DELAY_S,
                    station_count=STATION_COUNT,
                )
            )
            environ = {
                **sandbox.env,
                "DATABASE_URL": database_url,
                "MICROCROP_PLOTS_SOURCE": str(plots_file),
                "MINIO_BUCKET": bucket,
                "DAGSTER_HOME": str(dagster_home),
                # the simulators have no per-account quota; production keeps its defaults
                "WEATHERXM_RATE_LIMIT_PER_MINUTE": "60000",
                "SPEXI_RATE_LIMIT_PER_MINUTE": "60000",
                "PINATA_RATE_LIMIT_PER_MINUTE": "60000",
                **instance_environ,
            }
            stack.enter_context(patched_environ(environ))
            chain = _test_chain()
            stack.enter_context(patched_environ(_chain_environ(chain)))
            notes["sandbox"] = sandbox.root_url
        runner = _runner(dagster_home)
        run = SeasonRun(season, home, database_url, dagster_home, sandbox.gateway_url, object_root, sandbox.config)
        _season_loop(season, runner, clock, progress, database_url, spin_up, chain)
        run.runs = runner.runs
    run.seconds = time.monotonic() - progress.began
    return run


def _runner(dagster_home: Path) -> Runner:
    import dagster as dg

    from microcrop_assets.definitions import defs
    from microcrop_assets.resources.environment import build_resources

    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the demo's own folder
    # the same assets, jobs, schedules and sensors, with resources built from the demo's environment
    season_defs = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=build_resources(),
    )
    return Runner(season_defs, instance)


def _season_loop(
    season: Season, runner: Runner, clock, progress: Progress, database_url: str, spin_up: dt.date, chain
) -> None:
    import dagster as dg

    from microcrop_assets.defs.damage.sensors import stress_trigger_sensor
    from microcrop_assets.defs.imagery.schedules import ndvi_baselines_weekly, satellite_orders_daily
    from microcrop_assets.defs.imagery.sensors import satellite_order_sensor
    from microcrop_assets.defs.payouts.schedules import payout_proofs_nightly
    from microcrop_assets.defs.plots.assets import plots
    from microcrop_assets.defs.weather.assets import weather_stations

    def at(day: dt.date, hour: int) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)

    with progress.stage("plots, weather stations") as notes:
        dg.materialize(
            [plots, weather_stations], instance=runner.instance, resources=runner.resources, run_config=QUIET
        )
        runner.runs += 1
        notes["run"] = 1
    with progress.stage("policies on the receiver") as notes:
        notes["registered"] = _register_policies(chain, database_url)
    with progress.stage(f"spin-up weather {spin_up}...{season.first - dt.timedelta(days=1)}") as notes:
        runner.backfill("weather_nightly_job", spin_up, season.first - dt.timedelta(days=1))
        notes["single-run backfill"] = 1
    # the sensors are switched on at the season's start: their cursors begin after the spin-up
    stress_cursor = str(runner.instance.event_log_storage.get_maximum_record_id() or 0)
    order_cursor: str | None = None
    windows = list(_windows(season.first, season.last, WINDOW_DAYS))
    for number, (first, last) in enumerate(windows, start=1):
        with progress.stage(f"week {number:>2}/{len(windows)} {first}...{last}") as notes:
            before = runner.runs
            clock.now = at(last + dt.timedelta(days=1), 1)
            runner.backfill("weather_nightly_job", first, last)
            stress_runs, previous = 0, None
            while stress_cursor != previous:  # ticks until it has read every new weather_indices day
                previous = stress_cursor
                requests, stress_cursor = runner.sensor(stress_trigger_sensor, stress_cursor)
                stress_runs += runner.requests("stress_response_job", requests)
            days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
            for day in days:
                tick = at(day + dt.timedelta(days=1), 1)
                runner.requests("satellite_orders_job", runner.schedule(satellite_orders_daily, tick))
            clock.now = at(last + dt.timedelta(days=2), 1)  # a day later: the sandbox has flown the orders
            raster_runs = 0
            while True:
                requests, order_cursor = runner.sensor(satellite_order_sensor, order_cursor)
                raster_runs += runner.requests("ndvi_rasters_job", requests)
                if not order_cursor:
                    break
            for day in days + [last + dt.timedelta(days=1)]:
                if day.weekday() == 6:  # Sunday: the weekly baseline schedule
                    runner.requests("ndvi_baselines_job", runner.schedule(ndvi_baselines_weekly, at(day, 2)))
            runner.backfill("damage_assessments_job", first, last)
            for day in _days_to_prove(database_url, first, last):
                tick = at(day + dt.timedelta(days=1), 2)
                runner.requests("payout_proofs_job", runner.schedule(payout_proofs_nightly, tick))
            runner.job("payouts_job")
            counts = _counts(database_url)
            notes["runs"] = runner.runs - before
            notes["stress runs"] = stress_runs
            notes["raster runs"] = raster_runs
            notes["orders"] = counts["orders"]
            notes["plots triggered"] = counts["triggered"]
            notes["proofs"] = counts["proofs"]
            notes["paid"] = counts["confirmed"]
