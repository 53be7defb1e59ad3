"""The image as deployed: code server, webserver and daemon in containers of the built image, every run
launched by the daemon as a container of its own (the DockerRunLauncher of deploy/dagster.yaml).

Run by `./dev image-test`, which builds the base and the image and sets MICROCROP_IMAGE; skipped
without it. Every container is on the host network, so every connection stays on 127.0.0.1: this
machine's PostgreSQL and Redis, an S3 server (moto_server) and the vendor sandbox (a container too).
The instance is deploy/dagster.yaml with three test changes (`deployed_instance`): run containers on
the host network instead of the compose network, a test label on them, and run monitoring polled
every 5 s instead of 60 s (detection of the killed run in seconds, not a minute).

Work is submitted through the webserver's GraphQL API, as the UI's buttons do, and the rows the
containers wrote are compared with the rows the same partitions give in this process.
"""

import datetime as dt
import json
import math
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
import yaml

from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.season.run import QUIET, RANGE_END_TAG, RANGE_START_TAG, patched_environ
from microcrop_assets_tests.conftest import REDIS_URL, create_database, drop_database, free_port
from microcrop_assets_tests.fixtures.damage import add_baseline, add_ndvi, add_plot, add_weather
from microcrop_assets_tests.fixtures.ui import (
    LOCATION,
    REPOSITORY_SELECTOR,
    graphql,
    instigators,
    launch,
    stop_all,
    wait_for_run,
)

pytestmark = pytest.mark.container

IMAGE = os.environ.get("MICROCROP_IMAGE")
DOCKER = os.environ.get("DOCKER", "docker")
ROOT = Path(__file__).resolve().parents[1]
WEATHER_DAYS = ["2025-06-01", "2025-06-02", "2025-06-03"]
WEATHER_ASSETS = ["weather_readings", "weather_daily", "weather_indices"]
# damage for a day whose inputs are written straight to the tables: triggered plots, so proofs are pinned
DAMAGE_DAY = dt.date(2025, 6, 20)
DAMAGE_PLOTS = [("plot-a", 0.25, 0.42), ("plot-b", 0.5, None), ("plot-c", 0.0, 0.61)]
DAMAGE_ASSETS = ["damage_assessments", "payout_proofs"]
SHORT_SCENARIO = Path(__file__).parent / "data" / "season_short.json"
# they launch no runs: every other schedule and sensor is stopped, so that only the test's work runs
KEPT_SENSORS = ("run_failure_alert", "service_health_sensor")
START_TIMEOUT_S = 240
BACKFILL_TIMEOUT_S = 900
SANDBOX_KEYS = {
    "WEATHERXM_API_KEY": "sandbox-weatherxm-key",
    "SPEXI_API_KEY": "sandbox-spexi-key",
    "PINATA_JWT": "sandbox-pinata-jwt",
}
# the columns that differ between any two runs of the same work: when, not what
VOLATILE = {
    "created_at",
    "updated_at",
    "refreshed_at",
    "deactivated_at",
    "assessed_at",
    "first_seen",
    "last_attempt",
    "resolved_at",
    "source",  # where the plots file was read: the image's path against this checkout's
}
COMPARED_TABLES = {
    "plots": "plot_id",
    "weather_stations": "station_id",
    "plot_stations": "plot_id, station_id",
    "weather_readings": "station_id, ts",
    "weather_daily": "station_id, day",
    "weather_station_health": "station_id, day",
    "weather_indices": "plot_id, day",
    "vendor_gaps": "stage, day, key",
    "damage_assessments": "plot_id, day, assessment_id",
}

BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
} }
"""
BACKFILL_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status }
} }
"""
RUNS = """
query($filter: RunsFilter!) { runsOrError(filter: $filter) { __typename ... on Runs { results {
  runId status startTime tags { key value } stepStats { stepKey status startTime }
} } } }
"""
RUN_EVENTS = """
query($id: ID!) { logsForRun(runId: $id, limit: 1000) { __typename ... on EventConnection {
  events { __typename ... on MessageEvent { message } }
} } }
"""
SENSOR_TICKS = """
query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { __typename ... on Sensor {
  sensorState { ticks(limit: 20) { status timestamp } }
} } }
"""
DAEMONS = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def compose_environment() -> dict[str, str]:
    """compose.yaml's settings for every container, each `${NAME:-default}` at its default: the launcher
    passes each of its `env_vars` from the daemon's environment and refuses to launch when one is unset."""
    settings = yaml.safe_load((ROOT / "compose.yaml").read_text())["x-microcrop-env"]
    default = re.compile(r"\$\{[A-Z0-9_]+(?::-([^}]*)|:\?[^}]*)?\}")
    return {name: default.sub(lambda m: m.group(1) or "", str(value)) for name, value in settings.items()}


def deployed_instance(label: str) -> dict:
    """deploy/dagster.yaml with the test's three changes (module docstring)."""
    instance = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    launcher = instance["run_launcher"]["config"]
    assert launcher["network"] == "microcrop"  # the compose network, which this machine cannot have
    launcher["network"] = "host"
    launcher["container_kwargs"]["labels"]["org.microcrop.test"] = label
    instance["run_monitoring"]["poll_interval_seconds"] = 5
    return instance


class Stack:
    """The containers of one test module, their shared settings and their logs."""

    def __init__(self, folder: Path, label: str, environ: dict[str, str]):
        self.folder, self.label, self.environ = folder, label, environ
        self.env_file = folder / "stack.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in environ.items()))
        self.names: list[str] = []

    def start(
        self, role: str, *command: str, extra: tuple[str, ...] = (), detach: bool = True, deployed: bool = True
    ) -> str:
        """A container of the stack; `deployed`: with the stack's settings, instance and workspace
        (else the image's embedded defaults, as a user's `docker run`)."""
        name = f"{self.label}-{role}"
        options = ["--name", name, "--network", "host", "--label", f"org.microcrop.test={self.label}"]
        if deployed:
            options += [
                "--env-file", str(self.env_file),
                "-v", f"{self.folder / 'dagster.yaml'}:/opt/dagster/dagster_home/dagster.yaml:ro",
                "-v", f"{self.folder / 'workspace.yaml'}:/opt/dagster/app/workspace-test.yaml:ro",
            ]  # fmt: skip
        self.names.append(name)
        run = ["run", "-d"] if detach else ["run"]
        docker(*run, *options, *extra, IMAGE, *command)
        return name

    def containers(self) -> list[dict]:
        """Every container the test's label marks (its services and the daemon's run containers)."""
        ids = docker("ps", "-aq", "--filter", f"label=org.microcrop.test={self.label}").split()
        return json.loads(docker("inspect", *ids)) if ids else []

    def save_logs(self) -> Path:
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        for container in self.containers():
            name = container["Name"].lstrip("/")
            output = subprocess.run([DOCKER, "logs", name], capture_output=True, text=True)
            (logs / f"{name}.log").write_text(output.stdout + output.stderr)
        return logs

    def remove(self) -> None:
        ids = [c["Id"] for c in self.containers()]
        if ids:
            docker("rm", "-f", *ids, check=False)


def wait_until(what: str, probe, timeout_s: float = START_TIMEOUT_S, every_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = probe()
        except (httpx.HTTPError, AssertionError, subprocess.SubprocessError):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s} s"
        time.sleep(every_s)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, moto_endpoint):
    if not IMAGE:
        pytest.skip("the image's containers are tested by `./dev image-test` (it sets MICROCROP_IMAGE)")
    folder = Path(os.environ.get("MICROCROP_ARTIFACTS") or tmp_path_factory.mktemp("image")) / "image-test"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the containers' user, uid 10001, reads the mounted files
    label = f"microcrop-it-{uuid.uuid4().hex[:8]}"
    pipeline_db, instance_db = create_database("microcrop_image_pipeline"), create_database("microcrop_image_dagster")
    sandbox_port, code_port, web_port = free_port(), free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    instance_url = sa.make_url(instance_db)
    environ = {
        **compose_environment(),
        "DATABASE_URL": pipeline_db,
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(instance_url.port or 5432),
        "DAGSTER_PG_DB": instance_url.database,
        "DAGSTER_PG_USERNAME": instance_url.username or "postgres",
        "DAGSTER_PG_PASSWORD": instance_url.password or "",
        "REDIS_URL": REDIS_URL,
        "MINIO_ENDPOINT": moto_endpoint,
        "MINIO_ACCESS_KEY": "testing",
        "MINIO_SECRET_KEY": "testing",
        "MINIO_BUCKET": f"{label}-containers",
        "WEATHERXM_API_URL": f"{sandbox}/weatherxm/api/v1",
        "SPEXI_API_URL": f"{sandbox}/spexi/developer-api/api/v1",
        "PINATA_API_URL": f"{sandbox}/pinata",
        "PINATA_UPLOADS_URL": f"{sandbox}/pinata-uploads",
        "PINATA_GATEWAY": f"{sandbox}/ipfs",
        **SANDBOX_KEYS,
        # the simulators have no per-account quota
        "WEATHERXM_RATE_LIMIT_PER_MINUTE": "6000",
        "SPEXI_RATE_LIMIT_PER_MINUTE": "6000",
        "PINATA_RATE_LIMIT_PER_MINUTE": "6000",
    }
    (folder / "dagster.yaml").write_text(yaml.safe_dump(deployed_instance(label), sort_keys=False))
    workspace = {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": code_port, "location_name": LOCATION}}]}
    (folder / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    for name in ("dagster.yaml", "workspace.yaml"):
        (folder / name).chmod(0o644)
    services = Stack(folder, label, environ)
    try:
        # the season demo on the image's embedded defaults, shortened as the season demo test shortens
        # it: started first so it runs while the stack works (test_the_image_runs_the_documented_commands)
        services.start(
            "demo",
            *("microcrop", "demo", "--scenario", "/scenario/season_short.json", "--plots", "6"),
            extra=("-v", f"{SHORT_SCENARIO.parent}:/scenario:ro"),
            deployed=False,
        )
        services.start("sandbox", "microcrop", "sandbox", "serve", "--host", "127.0.0.1", "--port", str(sandbox_port))
        # the one-shot init of compose.yaml: pool limits into the instance database (creating its schema)
        services.start("init", "python", "-m", "microcrop_assets.deployment.pools", detach=False)
        code_server = services.start(
            "code-server",
            *("dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port)),
            *("-m", "microcrop_assets.definitions"),
            extra=("-e", f"DAGSTER_CURRENT_IMAGE={IMAGE}"),
        )
        wait_until("the sandbox", lambda: httpx.get(f"{sandbox}/_sandbox/info", timeout=3).status_code == 200)
        health = ("exec", code_server, "dagster", "api", "grpc-health-check", "-p", str(code_port))
        wait_until("the code server", lambda: docker(*health) is not None, every_s=3)
        url = f"http://127.0.0.1:{web_port}"
        services.start(
            "webserver", "dagster-webserver", "-h", "127.0.0.1", "-p", str(web_port), "-w", "workspace-test.yaml"
        )
        wait_until("the webserver", lambda: httpx.get(f"{url}/server_info", timeout=3).status_code == 200)
        # before the daemon starts: a default-running sensor stopped while the daemon ticks it can be
        # written back as running by that tick
        wait_until("the code location", lambda: instigators(url))
        stop_all(url, keep=KEPT_SENSORS)
        socket_group = str(os.stat("/var/run/docker.sock").st_gid)
        services.start(
            "daemon",
            *("dagster-daemon", "run", "-w", "workspace-test.yaml"),
            extra=("-v", "/var/run/docker.sock:/var/run/docker.sock", "--group-add", socket_group),
        )
        wait_until("the daemon", lambda: daemons_healthy(url), every_s=3)
        yield services, url
    finally:
        logs = services.save_logs()
        print(f"container logs: {logs}")
        services.remove()
        for database in (pipeline_db, instance_db):
            drop_database(database)


def daemons_healthy(url: str) -> bool:
    statuses = graphql(url, DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
    required = [s for s in statuses if s["required"]]
    return bool(required) and all(s["healthy"] for s in required)


def backfill(url: str, assets: list[str], first: str, last: str) -> str:
    """An asset backfill of the days [first, last] of each asset; its id. Each asset's range is given
    (`partitionsByAssets`): given as partition names alone, Dagster also targets every downstream
    partition whose window reads them, and weather_indices reads 90 days (3 days of readings would
    recompute 125 days of indices)."""
    selection = [{"assetKey": {"path": [a]}, "partitions": {"range": {"start": first, "end": last}}} for a in assets]
    params = {"partitionsByAssets": selection, "fromFailure": False}
    answer = graphql(url, BACKFILL, params=params)["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


def backfill_runs(url: str, backfill_id: str) -> list[dict]:
    answer = graphql(url, RUNS, filter={"tags": [{"key": "dagster/backfill", "value": backfill_id}]})["runsOrError"]
    assert answer["__typename"] == "Runs", answer
    return answer["results"]


def finished_backfill(url: str, backfill_id: str) -> str:
    def done():
        status = graphql(url, BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
        runs = backfill_runs(url, backfill_id)
        active = [r for r in runs if r["status"] not in ("SUCCESS", "FAILURE", "CANCELED")]
        return status if status != "REQUESTED" and not active else None

    return wait_until(f"backfill {backfill_id}", done, BACKFILL_TIMEOUT_S, every_s=2)


def run_container(stack: Stack, run_id: str) -> dict | None:
    for container in stack.containers():
        if container["Config"]["Labels"].get("dagster/run_id") == run_id:
            return container
    return None


def run_messages(url: str, run_id: str) -> list[str]:
    events = graphql(url, RUN_EVENTS, id=run_id)["logsForRun"]["events"]
    return [e.get("message") or "" for e in events]


def sensor_ticks(url: str, name: str) -> list[dict]:
    selector = {**REPOSITORY_SELECTOR, "sensorName": name}
    answer = graphql(url, SENSOR_TICKS, selector=selector)["sensorOrError"]
    assert answer["__typename"] == "Sensor", answer
    return answer["sensorState"]["ticks"]


def seed_damage_inputs(database_url: str) -> None:
    db = TimescaleDBResource(url=database_url)
    for plot_id, stress, ndvi in DAMAGE_PLOTS:
        add_plot(db, plot_id)
        add_weather(db, plot_id, DAMAGE_DAY, stress)
        if ndvi is not None:
            add_ndvi(db, plot_id, DAMAGE_DAY - dt.timedelta(days=2), ndvi)
            add_baseline(db, plot_id, DAMAGE_DAY - dt.timedelta(days=5), 0.61)


def table_rows(database_url: str) -> dict[str, list[dict]]:
    """The compared tables, without their volatile columns, NaN as a string (NaN equals nothing)."""
    db = TimescaleDBResource(url=database_url)
    tables = {}
    with db.begin() as conn:
        for table, order in COMPARED_TABLES.items():
            rows = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {order}")).mappings()
            tables[table] = [
                {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items() if k not in VOLATILE}
                for row in rows
            ]
    db.engine.dispose()
    return tables


@pytest.fixture(scope="module")
def deployed(stack):
    """The work done in containers: plots and stations, three days of weather (its run killed once,
    mid-run), one day of damage and proofs. What the test inspects afterwards."""
    services, url = stack
    stations_run = launch(url, "plots", "weather_stations")
    assert wait_for_run(url, stations_run, BACKFILL_TIMEOUT_S)["status"] == "SUCCESS"
    seed_damage_inputs(services.environ["DATABASE_URL"])

    weather = backfill(url, WEATHER_ASSETS, WEATHER_DAYS[0], WEATHER_DAYS[-1])

    def started_step():  # the first run of the backfill, once its container runs a step
        runs = backfill_runs(url, weather)
        steps = [s for r in runs for s in r["stepStats"] if s["startTime"]]
        container = run_container(services, runs[0]["runId"]) if runs and steps else None
        return (runs[0]["runId"], container) if container and container["State"]["Running"] else None

    killed_run, container = wait_until("a weather run's step", started_step, BACKFILL_TIMEOUT_S, every_s=0.3)
    docker("kill", "--signal", "KILL", container["Id"])
    weather_status = finished_backfill(url, weather)

    damage = backfill(url, DAMAGE_ASSETS, DAMAGE_DAY.isoformat(), DAMAGE_DAY.isoformat())
    damage_status = finished_backfill(url, damage)
    return {
        "stations_run": stations_run,
        "weather": (weather, weather_status, backfill_runs(url, weather)),
        "damage": (damage, damage_status, backfill_runs(url, damage)),
        "killed_run": killed_run,
    }


@pytest.fixture(scope="module")
def reference(stack, deployed):
    """The same partitions in this process, against a database of their own and the same sandbox."""
    services, _ = stack
    database_url = create_database("microcrop_image_reference")
    environ = {**services.environ, "DATABASE_URL": database_url, "MINIO_BUCKET": f"{services.label}-reference"}
    try:
        with patched_environ(environ):
            from microcrop_assets.definitions import defs
            from microcrop_assets.defs.plots.assets import plots
            from microcrop_assets.defs.weather.assets import weather_stations
            from microcrop_assets.resources.environment import build_resources

            reference_defs = dg.Definitions(
                assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, resources=build_resources()
            )
            instance = dg.DagsterInstance.ephemeral()

            def run(job: str, **kwargs) -> None:
                job_def = reference_defs.resolve_job_def(job)
                assert job_def.execute_in_process(run_config=QUIET, instance=instance, **kwargs).success, job

            dg.materialize(
                [plots, weather_stations], resources=reference_defs.resources, instance=instance, run_config=QUIET
            )
            seed_damage_inputs(database_url)
            run("weather_nightly_job", tags={RANGE_START_TAG: WEATHER_DAYS[0], RANGE_END_TAG: WEATHER_DAYS[-1]})
            run("damage_assessments_job", partition_key=DAMAGE_DAY.isoformat())
            run("payout_proofs_job", partition_key=DAMAGE_DAY.isoformat())
        yield table_rows(database_url)
    finally:
        drop_database(database_url)


def test_every_run_is_a_container_of_its_own_and_succeeds(stack, deployed):
    services, url = stack
    weather_id, weather_status, weather_runs = deployed["weather"]
    damage_id, damage_status, damage_runs = deployed["damage"]
    assert (weather_status, damage_status) == ("COMPLETED_SUCCESS", "COMPLETED_SUCCESS"), deployed
    launched = {deployed["stations_run"]} | {r["runId"] for r in weather_runs + damage_runs}
    containers = {run_id: run_container(services, run_id) for run_id in launched}
    assert all(containers.values()), {k: v is None for k, v in containers.items()}
    for container in containers.values():
        labels = container["Config"]["Labels"]
        assert labels["org.microcrop.role"] == "dagster-run" and container["HostConfig"]["NetworkMode"] == "host"
        assert container["Config"]["Image"] == IMAGE and container["Config"]["User"] in ("", "microcrop")
        assert container["Config"]["Cmd"][:3] == ["dagster", "api", "execute_run"], container["Config"]["Cmd"]
    # one container per run: no run shares one, and the daemon launched each
    assert len({c["Id"] for c in containers.values()}) == len(launched)
    succeeded = [r for r in weather_runs + damage_runs if r["status"] == "SUCCESS"]
    assert len(succeeded) == len(weather_runs + damage_runs) - 1  # all but the killed one
    assert {r["status"] for r in damage_runs} == {"SUCCESS"}


def test_a_killed_run_container_is_failed_by_monitoring_and_retried(stack, deployed):
    services, url = stack
    _, _, weather_runs = deployed["weather"]
    killed = deployed["killed_run"]
    by_id = {r["runId"]: r for r in weather_runs}
    assert by_id[killed]["status"] == "FAILURE"
    assert run_container(services, killed)["State"]["ExitCode"] == 137  # SIGKILL
    failure = [m for m in run_messages(url, killed) if "exited" in m.lower() or "run worker" in m.lower()]
    assert failure, run_messages(url, killed)[-5:]  # run monitoring's reason, naming the dead container
    retries = [r for r in weather_runs if {"key": "dagster/parent_run_id", "value": killed} in r["tags"]]
    assert [r["status"] for r in retries] == ["SUCCESS"], weather_runs


def test_containers_write_the_rows_this_process_writes(stack, deployed, reference):
    services, _ = stack
    deployed_rows = table_rows(services.environ["DATABASE_URL"])
    assert deployed_rows["weather_readings"] and deployed_rows["weather_indices"]
    assert any(r["proof_cid"] for r in deployed_rows["damage_assessments"])  # a triggered plot was proven
    differences = {}
    for table in COMPARED_TABLES:
        pairs = list(zip(deployed_rows[table], reference[table], strict=False))
        differing = [(ours, theirs) for ours, theirs in pairs if ours != theirs]
        # no row twice, none missing, every value equal
        if len(deployed_rows[table]) != len(reference[table]) or differing:
            differences[table] = (len(deployed_rows[table]), len(reference[table]), differing[:2])
    assert not differences, differences


def test_the_daemon_runs_the_sensors_in_its_container(stack, deployed):
    _, url = stack
    # the run failure sensor saw the killed run; the health sensor ticks every minute
    assert any(t["status"] == "SUCCESS" for t in sensor_ticks(url, "run_failure_alert"))
    assert sensor_ticks(url, "service_health_sensor")
    schedules, sensors = instigators(url)
    assert {name for name, state in sensors.items() if state["status"] == "RUNNING"} == set(KEPT_SENSORS)


def image_command(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A one-off container of the image (its own user, the host network), as a user types `docker run`."""
    options = [option for name, value in (env or {}).items() for option in ("-e", f"{name}={value}")]
    return subprocess.run(
        [DOCKER, "run", "--rm", "--network", "host", *options, IMAGE, *command],
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_the_image_runs_the_documented_commands_as_its_own_user(stack, tmp_path):
    services, _ = stack
    assert image_command("id", "-u").stdout.strip() == "10001"
    # the season demo (embedded PostgreSQL, local object store, the sandbox, the in-process chain)
    demo_container = f"{services.label}-demo"
    exit_code = subprocess.run([DOCKER, "wait", demo_container], capture_output=True, text=True, timeout=1200)
    demo = subprocess.run([DOCKER, "logs", demo_container], capture_output=True, text=True)
    assert exit_code.stdout.strip() == "0", demo.stdout[-3000:] + demo.stderr[-3000:]
    assert demo.stderr == "", demo.stderr[-3000:]  # no warnings: the same terminal as on the host
    assert re.search(
        r"^total payout [\d,]+\.\d\d USDC; \d+ proofs pinned; (\d+) of \1 payouts confirmed", demo.stdout, re.M
    )
    # the README's local commands, with an instance of their own (not the deployed one)
    local = {"DAGSTER_HOME": "/opt/dagster/state"}
    for command in (
        ("dagster", "definitions", "validate", "-w", "workspace.yaml"),
        ("dagster", "asset", "materialize", "-m", "microcrop_assets.definitions", "--select", "plots"),
        ("microcrop", "health"),
        ("microcrop", "--help"),
    ):
        done = image_command(*command, env=local)
        assert done.returncode == 0 or command[1] == "health", (command, done.stdout[-2000:], done.stderr[-2000:])
        assert "Traceback" not in done.stderr, (command, done.stderr[-2000:])


def test_a_dagster_command_without_the_instance_settings_names_them(stack):
    done = image_command("dagster", "definitions", "validate", "-w", "workspace.yaml")
    assert done.returncode == 2, done.stderr
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
        assert name in done.stderr
    assert "docs/deployment.md#settings-of-the-deployed-instance" in done.stderr and "Traceback" not in done.stderr
