"""Starting `microcrop ui` for a test (on a free loopback port) and talking to its GraphQL API."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from microcrop_assets_tests.conftest import REDIS_URL, free_port

STARTUP_TIMEOUT_S = 180
# the code location of workspace.yaml; a Definitions object makes the repository `__repository__`
LOCATION = "microcrop_assets"
REPOSITORY = "__repository__"


def start_ui(folder: Path, database_url: str) -> tuple[subprocess.Popen, str]:
    """The command in a subprocess, its output going to folder/ui.log; returns once the UI answers."""
    port = free_port()
    env = {
        **os.environ,
        "MICROCROP_HOME": str(folder / "home"),
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "microcrop_assets.cli", "ui", "--port", str(port)],
        env=env,
        stdout=(folder / "ui.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the UI did not come up on {url}:\n{(folder / 'ui.log').read_text()}")
        time.sleep(0.5)


def stop_ui(process: subprocess.Popen) -> None:
    """SIGTERM (the command stops its whole tree), killed if it has not gone within two minutes."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def graphql(url: str, query: str, **variables) -> dict:
    """The `data` of a GraphQL answer; an answer with errors fails naming them."""
    answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60).json()
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]
