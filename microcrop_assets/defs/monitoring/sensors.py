"""Operations sensors: the service health check every minute (figures charted on `pipeline_health`)
and the alert on every failed run.

Alerts go to ALERT_WEBHOOK_URL as JSON (`text` for Slack-style receivers, plus fields) when set,
else to the log. Payloads name the job, run, failing step and error, scrubbed of every credential.
"""

import json
import logging
import os

import dagster as dg
import httpx

from microcrop_assets.defs.monitoring.assets import pipeline_health
from microcrop_assets.defs.monitoring.health import UP, check_all, initialized, pipeline_metrics, scrub

log = logging.getLogger("microcrop.alerts")


def send_alert(payload: dict) -> bool:
    """POST the alert to ALERT_WEBHOOK_URL, or log it when unset; True when delivered or logged.
    A failing webhook is logged, never raised: the alert must not take its sensor down."""
    url = os.environ.get("ALERT_WEBHOOK_URL")
    if not url:
        log.error("ALERT %s", json.dumps(payload, sort_keys=True))
        return True
    try:
        httpx.post(url, json=payload, timeout=10).raise_for_status()
        return True
    except httpx.HTTPError as error:
        log.error("alert webhook failed (%s); alert was: %s", scrub(str(error)), json.dumps(payload, sort_keys=True))
        return False


def root_cause(error):
    """The innermost cause of a SerializableErrorInfo: Dagster wraps the asset's own exception."""
    while error.cause is not None:
        error = error.cause
    return error


def run_failure_payload(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    failures = context.get_step_failure_events()
    steps = [event.step_key for event in failures if event.step_key]
    errors = [
        root_cause(event.event_specific_data.error).message.strip()
        for event in failures
        if event.event_specific_data and event.event_specific_data.error
    ]
    error = scrub(errors[0] if errors else (context.failure_event.message or "run failed"))[:2000]
    step = ", ".join(steps) or "(no step: the run failed outside its steps)"
    partition = run.tags.get("dagster/partition")
    return {
        "text": f"MicroCrop run failed: job {run.job_name}, step {step}, run {run.run_id}: {error.splitlines()[0]}",
        "kind": "run_failure",
        "job": run.job_name,
        "run_id": run.run_id,
        "partition": partition,
        "step": step,
        "error": error,
    }


@dg.run_failure_sensor(
    name="run_failure_alert",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts ALERT_WEBHOOK_URL (or the log) with the job, run, failing step and error of each failed run.",
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    send_alert(run_failure_payload(context))


@dg.sensor(
    name="service_health_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Checks every service and records states and figures on pipeline_health; alerts when a "
    "required service goes down.",
)
def service_health_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    # the clients as the definitions bind them, opened only when the sensor ticks
    from microcrop_assets.resources.environment import build_resources

    resources = build_resources()
    statuses = check_all(resources)
    metadata: dict = {f"service/{s.service}": dg.MetadataValue.text(f"{s.state}: {s.detail}") for s in statuses}
    metadata["services_failing"] = dg.MetadataValue.int(sum(s.failing for s in statuses))
    database_up = next(s for s in statuses if s.service == "postgresql").state == UP
    if database_up:
        with initialized(resources["timescaledb"]) as db:
            figures = pipeline_metrics(db)
        metadata.update({name: dg.MetadataValue.int(value) for name, value in figures.items()})

    previous = json.loads(context.cursor) if context.cursor else {}
    for status in statuses:
        if status.failing and previous.get(status.service) != status.state:
            send_alert(
                {
                    "text": f"MicroCrop service {status.service} is {status.state}: {status.detail}",
                    "kind": "service_health",
                    "service": status.service,
                    "state": status.state,
                    "detail": status.detail,
                }
            )
    for status in statuses:
        context.log.info(status.line())
    failing = [s.service for s in statuses if s.failing]
    return dg.SensorResult(
        asset_events=[dg.AssetObservation(asset_key=pipeline_health.key, metadata=metadata)],
        cursor=json.dumps({s.service: s.state for s in statuses}, sort_keys=True),
        # the tick's line in the UI: it never requests runs
        skip_reason=f"not up: {', '.join(failing)}" if failing else "every required service up",
    )
