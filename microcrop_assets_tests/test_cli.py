"""The `microcrop` command as a user runs it: output, expected errors as one line, the state folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from microcrop_assets import settings
from microcrop_assets.cli import main as cli
from microcrop_assets.cli.errors import UserError, expected_error
from microcrop_assets.cli.resources import open_resources
from microcrop_assets.proofs.cid import file_cid
from microcrop_assets.resources.http import VendorUnavailable
from microcrop_assets.resources.object_store import ObjectStoreResource

from .conftest import free_port, object_store_env, start_server

ROOT = Path(__file__).parents[1]
DEMO_PLOTS = ROOT / "microcrop_assets" / "defs" / "plots" / "demo_plots.geojson"


def run_cli(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def user_env(**values: str) -> dict[str, str]:
    """This process's environment without the service settings, plus `values`."""
    prefixes = ("DATABASE_URL", "MINIO_", "REDIS_URL", "DAGSTER_", "MICROCROP_", "WEATHERXM_", "SPEXI_", "PINATA_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(prefixes)}, **values}


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# -- cid -------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_cid_prints_the_ipfs_cid(tmp_path, capsys):
    proof = tmp_path / "proof.json"
    proof.write_bytes(b"hello world")
    assert cli(["cid", str(proof)]) == 0
    assert capsys.readouterr().out.strip() == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert cli(["cid", str(proof), "--cid-version", "0"]) == 0
    assert capsys.readouterr().out.strip() == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    assert cli(["cid", str(proof), "--profile", "v1-2025"]) == 0
    assert capsys.readouterr().out.strip() == file_cid(b"hello world", 1, "v1-2025")


@pytest.mark.unit
def test_cid_names_bad_input_in_one_line(tmp_path, capsys):
    assert cli(["cid", str(tmp_path / "missing.json")]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("microcrop cid: No such file or directory") and line.endswith("missing.json")
    proof = tmp_path / "p.json"
    proof.write_bytes(b"{}")
    assert cli(["cid", str(proof), "--cid-version", "0", "--profile", "v1-2025"]) == 1
    assert "v1-2025" in one_line_error(capsys.readouterr().err)


@pytest.mark.unit
def test_bad_arguments_show_usage_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        cli(["cid"])
    assert exited.value.code == 2
    assert "the following arguments are required: file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli(["cid", "x", "--cid-version", "7"])
    assert exited.value.code == 2


# -- expected errors: one line, no traceback; bugs keep theirs ----------------------------------


@pytest.mark.integration
def test_plots_import_errors_are_one_line(tmp_path, monkeypatch, capsys, database_url, s3_store):
    for name, value in {"DATABASE_URL": database_url, **object_store_env(s3_store)}.items():
        monkeypatch.setenv(name, value)
    s3_store.put("present.geojson", b"{}")  # the bucket exists; only the key is missing

    assert cli(["plots", "import", str(tmp_path / "nowhere.geojson")]) == 1
    assert "nowhere.geojson' is not a file" in one_line_error(capsys.readouterr().err)

    assert cli(["plots", "import", f"s3://{s3_store.bucket}/missing.geojson"]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("microcrop plots: object 'missing.geojson' not found in s3 ")
    assert s3_store.secret_key not in line

    assert cli(["plots", "import", "s3://another-bucket/plots.geojson"]) == 1
    assert f"expected s3://{s3_store.bucket}/<key>" in one_line_error(capsys.readouterr().err)

    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/microcrop")
    assert cli(["plots", "import", str(DEMO_PLOTS)]) == 1
    assert one_line_error(capsys.readouterr().err).startswith("microcrop plots: database: connection ")


@pytest.mark.integration
def test_invalid_plots_are_listed_without_traceback(tmp_path, monkeypatch, capsys, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    collection = json.loads(DEMO_PLOTS.read_text())
    collection["features"][0]["properties"]["sum_insured_usdc"] = "-5"
    collection["features"][1]["geometry"] = None
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(collection))
    assert cli(["plots", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[0] == f"microcrop plots: {bad}: 2 invalid plot feature(s), nothing was changed:"
    assert len(lines) == 3 and all(line.startswith("  - feature ") for line in lines[1:])


@pytest.mark.integration
def test_issue_command_missing_s3_object_is_one_line(moto_endpoint, database_url):
    """`microcrop plots import s3://microcrop/missing.geojson` as typed (it ended in a traceback)."""
    store = ObjectStoreResource(endpoint=moto_endpoint, access_key="k", secret_key="s", bucket="microcrop")
    store.put("present.geojson", b"{}")
    env = user_env(
        DATABASE_URL=database_url,
        MINIO_ENDPOINT=moto_endpoint,
        MINIO_ACCESS_KEY="k",
        MINIO_SECRET_KEY="s",
        MICROCROP_HOME=os.environ["MICROCROP_HOME"],
    )
    done = run_cli("plots", "import", "s3://microcrop/missing.geojson", env=env)
    assert done.returncode == 1
    assert done.stdout == ""  # and no Dagster BetaWarning either: nothing the user can act on
    assert one_line_error(done.stderr) == (
        f"microcrop plots: object 'missing.geojson' not found in s3 {moto_endpoint}/microcrop"
    )


@pytest.mark.integration
def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path):
    env = user_env(MICROCROP_HOME=str(tmp_path), WEATHERXM_RATE_LIMIT_PER_MINUTE="sixty")
    done = run_cli("plots", "import", str(DEMO_PLOTS), env=env)
    assert done.returncode == 1
    assert one_line_error(done.stderr) == (
        "microcrop plots: environment variable WEATHERXM_RATE_LIMIT_PER_MINUTE='sixty' is not a whole number"
    )


@pytest.mark.unit
def test_an_unset_vendor_key_is_a_user_error_naming_it(monkeypatch):
    monkeypatch.delenv("WEATHERXM_API_KEY", raising=False)
    with pytest.raises(UserError) as raised, open_resources("weatherxm"):
        pass
    assert str(raised.value) == "environment variable WEATHERXM_API_KEY is not set (see docs/configuration.md)"


@pytest.mark.unit
def test_vendor_down_is_expected_and_a_bug_is_not(monkeypatch):
    down = VendorUnavailable("weatherxm", 503, "service unavailable", "GET", "https://pro.weatherxm.com/api/v1/x")
    assert expected_error(down) == (
        "weatherxm GET https://pro.weatherxm.com/api/v1/x failed (HTTP 503): service unavailable"
    )
    assert expected_error(RuntimeError("a bug")) is None
    assert expected_error(KeyError("plot_id")) is None

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("microcrop_assets.cli.db.cmd_db_stop", broken)
    with pytest.raises(RuntimeError, match="a bug"):  # main lets it through: its traceback shows
        cli(["db", "stop"])


# -- the local state folder ----------------------------------------------------------------------


@pytest.mark.unit
def test_state_folder_resolves_the_same_from_anywhere_and_is_not_created(tmp_path, monkeypatch):
    monkeypatch.delenv("MICROCROP_HOME")
    assert settings.home() == ROOT / ".microcrop"  # a source checkout: its own folder, whatever the cwd
    monkeypatch.chdir(tmp_path)
    assert settings.home() == ROOT / ".microcrop"

    installed = tmp_path / "site-packages" / "microcrop_assets"  # no pyproject.toml beside the package
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert settings.default_home(installed) == tmp_path / "state" / "microcrop"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert settings.default_home(installed) == tmp_path / "user" / ".local" / "state" / "microcrop"

    monkeypatch.setenv("MICROCROP_HOME", "relative-home")
    assert settings.home() == tmp_path / "relative-home"
    assert not (tmp_path / "relative-home").exists()
    assert settings.ensure_home() == tmp_path / "relative-home" and (tmp_path / "relative-home").is_dir()


@pytest.mark.unit
def test_db_stop_creates_nothing(tmp_path, monkeypatch, capsys):
    home = tmp_path / "never-created"
    monkeypatch.setenv("MICROCROP_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert cli(["db", "stop"]) == 0
    assert capsys.readouterr().out.strip() == f"no embedded PostgreSQL running in {home / 'postgres'}"
    assert sorted(tmp_path.iterdir()) == []


# -- sandbox -----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_sandbox_serve_answers_over_http():
    port = free_port()
    command = [sys.executable, "-m", "microcrop_assets.cli", "sandbox", "serve", "--port", str(port), "--seed", "7"]
    server = start_server(command, f"http://127.0.0.1:{port}/_sandbox/info")
    try:
        info = httpx.get(f"http://127.0.0.1:{port}/_sandbox/info", timeout=10)
        assert info.status_code == 200
        stations = httpx.get(
            f"http://127.0.0.1:{port}/weatherxm/api/v1/stations",
            headers={"X-API-KEY": "sandbox-weatherxm-key"},
            timeout=10,
        )
        assert stations.status_code == 200 and len(stations.json()["stations"]) > 0
        assert httpx.get(f"http://127.0.0.1:{port}/weatherxm/api/v1/stations", timeout=10).status_code == 401
    finally:
        server.terminate()
        server.wait(15)
