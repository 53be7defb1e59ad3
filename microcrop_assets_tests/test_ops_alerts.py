"""The run-failure alert: a real failed run in a test instance, delivered to a local HTTP receiver
(or the log without ALERT_WEBHOOK_URL), naming job, run, step and error and never a secret."""

import json
import logging

import dagster as dg
import pytest

from microcrop_assets.defs.monitoring.sensors import run_failure_alert, send_alert
from microcrop_assets_tests.fixtures.monitoring import http_receiver

pytestmark = pytest.mark.integration

API_KEY = "wxm-live-key-8c1f2e"


@pytest.fixture
def webhook(monkeypatch):
    with http_receiver("/hooks/alerts") as (url, received):
        monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
        yield received


@dg.asset(partitions_def=dg.DailyPartitionsDefinition("2025-06-01"))
def weather_readings_probe(context: dg.AssetExecutionContext) -> None:
    raise RuntimeError(f"WeatherXM refused https://pro.weatherxm.com/api/v1/stations?key={API_KEY}")


probe_job = dg.define_asset_job("weather_probe_job", selection=[weather_readings_probe])


def failure_context(instance: dg.DagsterInstance) -> dg.RunFailureSensorContext:
    """Execute a job that fails in one step, and the sensor context Dagster builds for that run."""
    defs = dg.Definitions(assets=[weather_readings_probe], jobs=[probe_job])
    result = defs.resolve_job_def("weather_probe_job").execute_in_process(
        instance=instance, partition_key="2025-06-02", raise_on_error=False
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_instance=instance, dagster_run=run, dagster_event=failure
    ).for_run_failure()


def test_failed_run_alerts_the_webhook_without_secrets(webhook, monkeypatch):
    monkeypatch.setenv("WEATHERXM_API_KEY", API_KEY)
    with dg.instance_for_test() as instance:
        context = failure_context(instance)
        run_failure_alert(context)
        (payload,) = webhook
        assert payload["kind"] == "run_failure"
        assert payload["job"] == "weather_probe_job"
        assert payload["run_id"] == context.dagster_run.run_id
        assert payload["partition"] == "2025-06-02"
        assert payload["step"] == "weather_readings_probe"
        assert "RuntimeError" in payload["error"] and "WeatherXM refused" in payload["error"]
        assert API_KEY not in json.dumps(payload)
        assert "weather_probe_job" in payload["text"] and payload["run_id"] in payload["text"]


def test_without_webhook_the_alert_goes_to_the_log(monkeypatch, caplog):
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("WEATHERXM_API_KEY", API_KEY)
    with dg.instance_for_test() as instance, caplog.at_level(logging.ERROR, logger="microcrop.alerts"):
        run_failure_alert(failure_context(instance))
    (record,) = [r for r in caplog.records if r.name == "microcrop.alerts"]
    assert "weather_probe_job" in record.getMessage() and "weather_readings_probe" in record.getMessage()
    assert API_KEY not in record.getMessage()


def test_an_unreachable_webhook_is_logged_not_raised(monkeypatch, caplog):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hooks")  # discard port: nothing listens
    with caplog.at_level(logging.ERROR, logger="microcrop.alerts"):
        assert send_alert({"text": "service redis is down", "kind": "service_health"}) is False
    assert "service redis is down" in caplog.text
