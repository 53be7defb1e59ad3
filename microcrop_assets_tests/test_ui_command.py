"""`microcrop ui` starts the sandbox and `dagster dev`, serves the repository with its schedules and
sensors, and stops every process it started on SIGTERM and on SIGINT."""

import re
import signal
import subprocess

import httpx
import psutil
import pytest

from microcrop_assets_tests.fixtures.ui import graphql, start_ui

pytestmark = pytest.mark.e2e

REPOSITORY_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name location { name } schedules { name } sensors { name } jobs { name }
} } } }
"""


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def assert_stops_cleanly(process: subprocess.Popen, signum: int) -> None:
    tree = descendants(process.pid)
    names = {" ".join(child.cmdline()[1:4]) for child in tree}
    assert any("dagster dev" in name for name in names), names
    assert any("dagster_webserver" in name for name in names), names
    assert any("dagster._daemon" in name for name in names), names
    process.send_signal(signum)
    assert process.wait(timeout=120) == 0
    left = [child for child in tree if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    for child in left:  # so a failing test leaves nothing behind either
        child.kill()
    assert not left, f"left running after {signal.Signals(signum).name}: {[p.cmdline()[1:5] for p in left]}"


def test_ui_serves_repository_and_stops_on_sigterm(tmp_path, database_url):
    process, url = start_ui(tmp_path, database_url)
    try:
        (repository,) = graphql(url, REPOSITORY_QUERY)["repositoriesOrError"]["nodes"]
        assert repository["location"]["name"] == "microcrop_assets"  # as in workspace.yaml
        schedules = {s["name"] for s in repository["schedules"]}
        sensors = {s["name"] for s in repository["sensors"]}
        jobs = {j["name"] for j in repository["jobs"]}
        assert {"weather_readings_intraday", "weather_nightly", "weather_stations_daily"} <= schedules
        assert {"service_health_sensor", "run_failure_alert"} <= sensors
        assert "weather_nightly_job" in jobs
        # the code server (where runs and sensors get their settings) points at the running sandbox
        sandbox = re.search(r"sandbox serving WeatherXM, Spexi and Pinata at (\S+)", (tmp_path / "ui.log").read_text())
        (code_server,) = [p for p in descendants(process.pid) if p.cmdline()[2:5] == ["dagster", "api", "grpc"]]
        code_env = code_server.environ()
        assert code_env["WEATHERXM_API_URL"] == f"{sandbox[1]}/weatherxm/api/v1"
        assert code_env["DAGSTER_HOME"] == str(tmp_path / "home" / "dagster")
        assert httpx.get(f"{sandbox[1]}/_sandbox/info", timeout=5).status_code == 200
        assert_stops_cleanly(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    with pytest.raises(httpx.ConnectError):  # the sandbox went with it
        httpx.get(f"{sandbox[1]}/_sandbox/info", timeout=5)


def test_ui_stops_on_ctrl_c(tmp_path, database_url):
    process, _ = start_ui(tmp_path, database_url)
    try:
        assert_stops_cleanly(process, signal.SIGINT)
    finally:
        if process.poll() is None:
            process.kill()
