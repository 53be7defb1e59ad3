"""`microcrop health` and the health sensor against the real PostgreSQL, Redis, moto S3 and the
sandbox, then with services down (closed ports) or unconfigured."""

import json
import os
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from microcrop_assets.defs.monitoring.assets import pipeline_health
from microcrop_assets.defs.monitoring.health import DOWN, NOT_CONFIGURED, UP, pipeline_metrics
from microcrop_assets.defs.monitoring.sensors import service_health_sensor
from microcrop_assets.defs.payouts.ledger import enqueue
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets_tests.conftest import REDIS_URL, create_database, drop_database, free_port, object_store_env
from microcrop_assets_tests.fixtures.damage import add_plot
from microcrop_assets_tests.fixtures.monitoring import http_receiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chain_url():
    with http_receiver("/v2/secret-rpc-key-123") as (url, _):
        yield url


@pytest.fixture
def services_env(sandbox, database_url, chain_url, s3_store, monkeypatch):
    """Every setting pointing at a live service (the object store's bucket exists)."""
    s3_store.put("health/ready.txt", b"ok")
    values = {
        **sandbox.env,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        **object_store_env(s3_store),
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


def seed_pipeline_rows(db) -> dict[str, int]:
    """Rows inside and outside the 24 h window in every table the figures count (on top of `proven`);
    the figures they give."""
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE weather_readings, plot_ndvi_observations"))
        conn.execute(
            sa.text(
                "INSERT INTO weather_readings (station_id, ts) VALUES "
                "('s1', now() - interval '1 hour'), ('s2', now() - interval '23 hours'), "
                "('s1', now() - interval '25 hours')"
            )
        )
    now = pd.Timestamp.now(tz="UTC")
    hours = [1, 1, 23, 25]  # the first image covers two plots; the last is outside the window
    observations = pd.DataFrame(
        {
            "order_id": ["o1", "o1", "o2", "o3"],
            "plot_id": ["plot-a", "plot-b", "plot-a", "plot-a"],
            "capture_date": [(now - pd.Timedelta(hours=h)).date() for h in hours],
            "captured_at": [now - pd.Timedelta(hours=h) for h in hours],
            "valid_fraction": 0.9,
            "pixels": 100,
            "masked": "{}",
            "image_key": ["raw/o1.tif", "raw/o1.tif", "raw/o2.tif", "raw/o3.tif"],
            "image_sha256": "s",
            "ndvi_key": ["n1", "n2", "n3", "n4"],
            "ndvi_sha256": "h",
            "evi_key": "e",
            "lai_key": "l",
        }
    )
    with db.begin() as conn:
        db.copy_frame(conn, "plot_ndvi_observations", observations)

    # proven: three assessments with proofs, plot-c untriggered; plot-c's made 25 hours ago
    add_plot(db, "plot-d", active=False)
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE damage_assessments SET created_at = now() - interval '25 hours' WHERE plot_id = 'plot-c'")
        )
    assert enqueue(db) == 2  # a pending payout per triggered assessment
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE payouts SET status = 'confirmed', tx_hash = '0xab' WHERE plot_id = 'plot-a'"))
    return {"readings_24h": 2, "images_24h": 2, "assessments_24h": 2, "pending_payouts": 1, "active_plots": 3}


def test_pipeline_metrics_count_recent_rows(proven):
    expected = seed_pipeline_rows(proven)
    assert pipeline_metrics(proven) == expected


def test_pipeline_metrics_are_none_before_the_tables_exist():
    """A new deployment: the health sensor ticks before any run has migrated the database."""
    url = create_database()
    try:
        fresh = TimescaleDBResource(url=url, migrate=False)
        assert pipeline_metrics(fresh) == {}
        fresh.engine.dispose()
    finally:
        drop_database(url)


def test_health_sensor_observes_states_and_figures(services_env, proven):
    expected = seed_pipeline_rows(proven)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        result = service_health_sensor(context)
        (observation,) = result.asset_events
        assert observation.asset_key == pipeline_health.key
        metadata = observation.metadata
        assert metadata["service/postgresql"].value.startswith("up: ")
        assert metadata["service/chain"].value == "up: chain id 84532"
        assert metadata["services_failing"].value == 0
        assert {name: metadata[name].value for name in expected} == expected
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
