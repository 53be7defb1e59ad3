"""`microcrop health` and the health sensor against the real PostgreSQL, Redis, moto S3 and the
sandbox, then with services down (closed ports) or unconfigured."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.ops.health import DOWN, NOT_CONFIGURED, UP, pipeline_metrics
from microcrop_assets.ops.sensors import pipeline_health, service_health_sensor
from microcrop_assets.plots.registry import parse_plots, store_plots
from microcrop_assets.sandbox.config import DEFAULT_PLOTS_FILE
from microcrop_assets_tests.conftest import REDIS_URL, free_port
from microcrop_assets_tests.fixtures_ops import http_receiver


@pytest.fixture(scope="module")
def chain_url():
    with http_receiver("/v2/secret-rpc-key-123") as (url, _):
        yield url


@pytest.fixture
def services_env(sandbox, database_url, moto_endpoint, chain_url, s3_store, monkeypatch):
    """Every setting pointing at a live service (the object store's bucket exists)."""
    s3_store.put("health/ready.txt", b"ok")
    values = {
        **sandbox.env,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "MINIO_ENDPOINT": moto_endpoint,
        "MINIO_ACCESS_KEY": s3_store.access_key,
        "MINIO_SECRET_KEY": s3_store.secret_key,
        "MINIO_BUCKET": s3_store.bucket,
        "BASE_RPC_URL": chain_url,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run_health(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", "health"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def states(stdout: str) -> dict[str, str]:
    """service -> state from the command's lines (services and states are separated by 2+ spaces)."""
    found = {}
    for line in stdout.splitlines():
        for state in (NOT_CONFIGURED, DOWN, UP):  # longest first: "not configured" before "up"
            name, sep, _ = line.partition(f" {state} ")
            if sep:
                found[name.strip()] = state
                break
    return found


SERVICES = {"postgresql", "object storage", "redis", "weatherxm", "spexi", "pinata", "chain"}


def test_health_all_up_then_each_failure_mode(services_env):
    everything = run_health(services_env)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert states(everything.stdout) == dict.fromkeys(SERVICES, UP)
    assert "TimescaleDB absent (plain PostgreSQL)" in everything.stdout  # this server has no extension
    assert "chain id 84532" in everything.stdout
    assert "secret-rpc-key-123" not in everything.stdout + everything.stderr

    broken = run_health(
        {
            **services_env,
            "SPEXI_API_KEY": "",
            "WEATHERXM_API_KEY": "not-the-key-4711",
            "DATABASE_URL": f"postgresql://postgres:pw-0815@127.0.0.1:{free_port()}/x",
            "BASE_RPC_URL": f"http://127.0.0.1:{free_port()}/rpc-key-99",
        }
    )
    assert broken.returncode == 1
    found = states(broken.stdout)
    assert found["spexi"] == NOT_CONFIGURED and "SPEXI_API_KEY not set" in broken.stdout
    assert found["weatherxm"] == DOWN and "VendorAuthError" in broken.stdout  # the sandbox refused the key
    assert found["postgresql"] == DOWN and found["chain"] == DOWN  # a configured chain is required
    assert found["pinata"] == UP and found["redis"] == UP and found["object storage"] == UP
    for secret in ("not-the-key-4711", "pw-0815", "rpc-key-99"):
        assert secret not in broken.stdout + broken.stderr
    assert "postgresql" in broken.stderr.splitlines()[-1]


def test_pipeline_metrics_count_recent_rows_and_name_absent_tables(db, clean_plots):
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM weather_readings"))
        conn.execute(
            sa.text(
                "INSERT INTO weather_readings (station_id, ts) VALUES "
                "('s1', now() - interval '1 hour'), ('s2', now() - interval '23 hours'), "
                "('s1', now() - interval '25 hours')"
            )
        )
    plots = parse_plots(DEFAULT_PLOTS_FILE.read_bytes(), "demo plots")
    store_plots(db, plots, "demo plots")
    store_plots(db, plots.iloc[1:], "demo plots without the first")  # the first becomes inactive
    figures = pipeline_metrics(db)
    assert figures["readings_24h"] == 2  # the 25-hour-old reading is outside the window
    assert figures["active_plots"] == len(plots) - 1
    # tables of domains not in this database yet are reported absent, not as zero
    assert figures["images_24h"] is None and figures["assessments_24h"] is None
    assert figures["pending_payouts"] is None


def test_health_sensor_observes_states_and_figures(services_env, db):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        result = service_health_sensor(context)
        (observation,) = result.asset_events
        assert observation.asset_key == pipeline_health.key
        metadata = observation.metadata
        assert metadata["service/postgresql"].value.startswith("up: ")
        assert metadata["service/chain"].value == "up: chain id 84532"
        assert metadata["services_failing"].value == 0
        assert metadata["readings_24h"].value >= 0 and "active_plots" in metadata
        assert "images_24h" in metadata["figures_not_present"].value
        assert json.loads(result.cursor)["redis"] == UP
        assert result.skip_reason.skip_message == "every required service up"


def test_health_sensor_alerts_once_when_a_service_goes_down(services_env, monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("BASE_RPC_URL", "")
    with http_receiver("/alerts") as (url, alerts), dg.instance_for_test() as instance:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
        first = service_health_sensor(dg.build_sensor_context(instance=instance, cursor=json.dumps({"redis": UP})))
        assert json.loads(first.cursor)["redis"] == DOWN
        assert {alert["service"] for alert in alerts} >= {"redis"}
        (redis_alert,) = [alert for alert in alerts if alert["service"] == "redis"]
        assert redis_alert["kind"] == "service_health" and redis_alert["state"] == DOWN
        (observation,) = first.asset_events
        metadata = observation.metadata
        # vendors share Redis for their rate limits, so they fail with it; storage does not
        failing = {name for name, value in metadata.items() if name.startswith("service/") and value.value[:3] != "up:"}
        assert failing == {"service/redis", "service/weatherxm", "service/spexi", "service/pinata", "service/chain"}
        assert metadata["service/chain"].value == "not configured: BASE_RPC_URL not set"
        assert metadata["services_failing"].value == 4  # an unset chain is optional
        # still down on the next tick: no second alert
        count = len(alerts)
        service_health_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert len(alerts) == count
