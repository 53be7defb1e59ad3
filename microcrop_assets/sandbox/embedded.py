"""Run the sandbox in a background thread for tests, benchmarks and the demo.

with running_sandbox(seed=7, scenario="drought.json", faults={"share_5xx": 0.2}) as sandbox:
    httpx.get(f"{sandbox.weatherxm_url}/stations", headers={"X-API-KEY": sandbox.credentials.weatherxm_api_key})
    sandbox.set_faults(fail_next=2, fail_next_status=429)
"""

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from microcrop_assets.sandbox.config import Credentials, Faults, SandboxConfig
from microcrop_assets.sandbox.server import build_config, create_app, urls
from microcrop_assets.sandbox.state import Sandbox

STARTUP_TIMEOUT_S = 15


class ManualClock:
    """A sandbox clock that moves only when told to: `SandboxConfig(clock=ManualClock(start))`."""

    def __init__(self, start: dt.datetime):
        if start.tzinfo is None:
            raise ValueError(f"ManualClock start {start!r} must be timezone-aware")
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, **delta) -> dt.datetime:
        """Move forward, e.g. advance(seconds=30) or advance(days=1)."""
        with self._lock:
            self.now += dt.timedelta(**delta)
            return self.now


@dataclass(frozen=True)
class RunningSandbox:
    root_url: str
    weatherxm_url: str
    spexi_url: str
    pinata_url: str
    pinata_uploads_url: str
    gateway_url: str
    credentials: Credentials
    config: SandboxConfig
    sandbox: Sandbox  # the in-process state (world, fault knobs), for assertions

    def set_faults(self, **knobs) -> Faults:
        """Set fault knobs (the others go back to their configured values); the fault sequence restarts."""
        return self.sandbox.faults.update(**knobs)

    def clear_faults(self) -> Faults:
        return self.set_faults()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing the pipeline at this sandbox."""
        values = urls(self.root_url)
        values.update(
            WEATHERXM_API_KEY=self.credentials.weatherxm_api_key,
            SPEXI_API_KEY=self.credentials.spexi_api_key,
            PINATA_JWT=self.credentials.pinata_jwt,
        )
        return values


@contextmanager
def running_sandbox(config: SandboxConfig | None = None, **overrides) -> Iterator[RunningSandbox]:
    """Serve a sandbox on a free loopback port for the duration of the block.

    Keywords override `config` fields; `scenario` may be a Scenario, a dict or a file path and
    `faults` a Faults or a dict of knobs."""
    config = build_config(config=config, **overrides)
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{port}", daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start on {root}")
            time.sleep(0.01)
        httpx.get(f"{root}/_sandbox/info", timeout=5).raise_for_status()
        service = urls(root)
        yield RunningSandbox(
            root_url=root,
            weatherxm_url=service["WEATHERXM_API_URL"],
            spexi_url=service["SPEXI_API_URL"],
            pinata_url=service["PINATA_API_URL"],
            pinata_uploads_url=service["PINATA_UPLOADS_URL"],
            gateway_url=service["PINATA_GATEWAY"],
            credentials=config.credentials,
            config=config,
            sandbox=app.state.sandbox,
        )
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"the sandbox on {root} did not stop")
