"""`microcrop ui`: the vendor sandbox and `dagster dev` (webserver, daemon, code server) wired to it.

Stopping: Ctrl-C (SIGINT) or SIGTERM. `dagster dev` runs in a process group of its own and gets
SIGINT forwarded to that whole group (it ignores SIGTERM, and a shell starting it in the background
makes it ignore SIGINT too unless the disposition is reset, which happens here because this process
installs handlers before starting it). Whatever still runs after the grace period is killed, so
no webserver, daemon, code server or run process outlives the command.
"""

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from microcrop_assets import settings

# dagster dev waits up to 60 s for its webserver and daemon; give it that plus a margin
SHUTDOWN_GRACE_S = 75
LOCAL_INSTANCE = Path(__file__).resolve().parents[2] / "dagster.yaml"
# the location name of workspace.yaml and the deployments, so run history reads the same everywhere
WORKSPACE = """load_from:
  - python_module:
      module_name: microcrop_assets.definitions
      location_name: microcrop_assets
"""


def dagster_home() -> Path:
    """The UI's instance folder (run history kept between sessions), with the repository's local
    instance configuration when this runs from a checkout."""
    home = settings.home() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    if LOCAL_INSTANCE.exists():
        shutil.copyfile(LOCAL_INSTANCE, home / "dagster.yaml")
    (home / "workspace.yaml").write_text(WORKSPACE)
    return home


def dev_command(home: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "dagster", "dev",
        "-w", str(home / "workspace.yaml"),
        "--host", host, "--port", str(port),
    ]  # fmt: skip


def stop_process_tree(process: subprocess.Popen, grace_s: float = SHUTDOWN_GRACE_S) -> None:
    """SIGINT to the process group `process` leads, wait, then kill whatever of the tree is left."""
    import psutil  # here, not at the top: every `microcrop` command imports this module to build its parser

    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        print(f"dagster dev did not stop within {grace_s:.0f} s; killing it", file=sys.stderr, flush=True)
    _, alive = psutil.wait_procs(tree, timeout=5)
    for survivor in alive:
        survivor.kill()
    psutil.wait_procs(alive, timeout=5)
    # anything started in the group and reparented (a run process whose parent died first)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_ui(host: str = "127.0.0.1", port: int = 3000, seed: int | None = None, scenario: str | None = None) -> int:
    from microcrop_assets.cli.demo import DEMO_SCENARIO
    from microcrop_assets.sandbox.embedded import running_sandbox

    stop = threading.Event()

    def request_stop(signum, frame):  # runs in the main thread, which is waiting on `stop`
        stop.set()

    # handlers (not SIG_IGN) before the child starts: the child then begins with default dispositions
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with running_sandbox(seed=seed, scenario=scenario or DEMO_SCENARIO) as sandbox:
            home = dagster_home()
            env = {
                **os.environ,
                **sandbox.env,
                "DAGSTER_HOME": str(home),
                "MICROCROP_HOME": str(settings.home()),  # absolute: dagster dev runs in DAGSTER_HOME
            }
            print(f"sandbox serving WeatherXM, Spexi and Pinata at {sandbox.root_url}", flush=True)
            print(f"Dagster UI at http://{host}:{port} (instance {home}); Ctrl-C stops everything", flush=True)
            process = subprocess.Popen(dev_command(home, host, port), env=env, cwd=home, start_new_session=True)
            try:
                while not stop.is_set() and process.poll() is None:
                    stop.wait(0.5)
            finally:
                stop_process_tree(process)
            if not stop.is_set():
                print(f"dagster dev exited by itself with status {process.returncode}", file=sys.stderr)
                return process.returncode or 1
            return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_ui(args: argparse.Namespace) -> int:
    return run_ui(host=args.host, port=args.port, seed=args.seed, scenario=args.scenario)


def add_commands(commands: argparse._SubParsersAction) -> None:
    ui = commands.add_parser("ui", help="the Dagster UI with its daemon, wired to the vendor sandbox")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--seed", type=int, default=None, help="sandbox seed")
    ui.add_argument("--scenario", default=None, help="sandbox scenario JSON (default: the demo's drought)")
    ui.set_defaults(func=cmd_ui)
