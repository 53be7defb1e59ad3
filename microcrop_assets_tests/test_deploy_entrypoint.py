"""The image's entrypoint: a Dagster command without the deployed instance's settings is refused with
every missing name and where it is documented (the image test runs the real container)."""

from pathlib import Path

import pytest
import yaml

from microcrop_assets.deployment.entrypoint import DOCS, main, missing_settings

pytestmark = pytest.mark.unit

INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
STORAGE = ["DAGSTER_PG_DB", "DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME"]


def test_every_dagster_command_needs_the_instance_storage_settings():
    text = INSTANCE.read_text()
    assert missing_settings(text, "dagster", {}) == STORAGE
    assert missing_settings(text, "dagster-webserver", {"DAGSTER_PG_HOST": "db"}) == [
        name for name in STORAGE if name != "DAGSTER_PG_HOST"
    ]
    # set to empty is set: compose passes unused settings as empty strings
    assert missing_settings(text, "dagster", dict.fromkeys(STORAGE, "")) == []


def test_the_daemon_also_needs_every_setting_its_launcher_passes_to_runs():
    text = INSTANCE.read_text()
    passed = yaml.safe_load(text)["run_launcher"]["config"]["env_vars"]
    missing = missing_settings(text, "dagster-daemon", dict.fromkeys(STORAGE, "x"))
    assert missing == sorted(set(passed) - set(STORAGE)) and "BASE_RPC_URL" in missing
    assert missing_settings(text, "dagster-daemon", dict.fromkeys(STORAGE + passed, "")) == []


def test_a_refused_command_names_what_to_set_and_where(tmp_path, monkeypatch, capsys):
    (tmp_path / "dagster.yaml").write_text(INSTANCE.read_text())
    for name in STORAGE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["dagster", "definitions", "validate"]) == 2
    message = capsys.readouterr().err
    assert ", ".join(STORAGE) in message and DOCS in message and "docs/configuration.md" in message
