"""The package's layers and its freedom from import cycles (import-linter's contracts in pyproject.toml),
and the `dg` CLI the README names.

The contracts are checked on the package itself and, to show they would catch a mistake, on a copy in
tmp_path with one deliberate break each: `lint-imports` runs in the copy's folder, which comes first on
its path, so it reads the copy and the repository's contracts.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
CONTRACTS = [
    contract["name"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
]
LAYERS = "Layers: entry points over tooling over the pipeline over its libraries"
DOMAINS = "A domain imports only the domains upstream of it"
PURE_SCIENCE = "science is pure: no Dagster, no I/O"
NO_CYCLES = "No import cycles between the modules of a package"


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the contracts of project/pyproject.toml over the package in `project`."""
    return subprocess.run(
        [BIN / "lint-imports", "--no-cache", "--no-logo"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def module_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Each import `a -> b` from which a chain of imports leads back to `a`, as `a -> b -> ... -> a`.

    acyclic_siblings compares the modules of a package with each other, never with the package's own
    __init__: `cli` importing `cli.demo` while `cli.demo` imports `cli` is only caught here."""
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycles.append(" -> ".join((importer, *back)))
    return cycles


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A folder holding a copy of the package and the repository's pyproject.toml."""
    shutil.copytree(
        ROOT / "microcrop_assets", tmp_path / "microcrop_assets", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_line(project: Path, module: str, line: str) -> None:
    path = project / (module.replace(".", "/") + ".py")
    assert path.exists(), path  # a break in a module that moved would prove nothing
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_package_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {LAYERS, DOMAINS, PURE_SCIENCE, NO_CYCLES} <= set(CONTRACTS)
    lines = result.stdout.splitlines()
    assert [name for name in CONTRACTS if f"{name} KEPT" not in lines] == []
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in lines


def test_no_chain_of_imports_leads_back_to_its_module():
    assert module_cycles(grimp.build_graph("microcrop_assets", cache_dir=None)) == []


@pytest.mark.parametrize(
    ("module", "line", "contract", "named"),
    [
        pytest.param(
            "microcrop_assets.science.policy",
            "from microcrop_assets.defs.shared import daily_partitions",
            LAYERS,
            "microcrop_assets.science.policy -> microcrop_assets.defs.shared",
            id="science-imports-defs",
        ),
        pytest.param(
            "microcrop_assets.defs.weather.assets",
            "from microcrop_assets.defs.damage.assets import damage_assessments",
            DOMAINS,
            "microcrop_assets.defs.weather.assets -> microcrop_assets.defs.damage.assets",
            id="weather-imports-damage",
        ),
        pytest.param(
            "microcrop_assets.science.geo",
            "def fetch():\n    import httpx",  # a function-level import counts too
            PURE_SCIENCE,
            "microcrop_assets.science.geo -> httpx",
            id="science-imports-httpx",
        ),
        pytest.param(
            "microcrop_assets.science.spi",
            "from microcrop_assets.science import plot_indices",  # plot_indices imports spi
            NO_CYCLES,
            "No cycles are allowed in microcrop_assets.science.",
            id="cycle-in-science",
        ),
    ],
)
def test_a_deliberate_break_fails_its_contract(package_copy, module, line, contract, named):
    add_line(package_copy, module, line)
    result = lint_imports(package_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract} BROKEN" in result.stdout.splitlines()
    assert named in result.stdout


def test_a_package_importing_its_own_module_back_is_a_cycle(package_copy, monkeypatch):
    add_line(package_copy, "microcrop_assets.cli.__init__", "from microcrop_assets.cli import demo")
    add_line(package_copy, "microcrop_assets.cli.demo", "from microcrop_assets.cli import main")
    # grimp finds the package by importlib: the copy, once the imported original is out of the way
    monkeypatch.syspath_prepend(str(package_copy))
    monkeypatch.delitem(sys.modules, "microcrop_assets")
    graph = grimp.build_graph("microcrop_assets", cache_dir=None)
    assert "microcrop_assets.cli -> microcrop_assets.cli.demo -> microcrop_assets.cli" in module_cycles(graph)


def dg(*args: str) -> subprocess.CompletedProcess:
    """`.venv/bin/dg ...` from the repository root as the README runs it: no virtual environment activated."""
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    return subprocess.run([BIN / "dg", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_dg_check_defs_passes_without_warnings():
    result = dg("check", "defs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully." in result.stdout
    assert "warning" not in result.stderr.lower(), result.stderr


def test_dg_list_defs_names_every_job_schedule_and_sensor():
    from microcrop_assets.definitions import defs

    result = dg("list", "defs", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert "warning" not in result.stderr.lower(), result.stderr
    jobs = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert {job["name"] for job in listed["jobs"]} == jobs
    assert {schedule["name"] for schedule in listed["schedules"]} == {schedule.name for schedule in defs.schedules}
    assert {sensor["name"] for sensor in listed["sensors"]} == {sensor.name for sensor in defs.sensors}
    assert {asset["asset_key"] for asset in listed["assets"]} == {
        key.to_user_string() for key in defs.resolve_all_asset_keys()
    }
    assert {"weather_nightly_job", "payouts_job"} <= jobs
