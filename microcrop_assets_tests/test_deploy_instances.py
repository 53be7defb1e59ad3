"""Both deployed instances load with their run launchers (Docker for compose.yaml, Kubernetes for
the Helm values), and compose.yaml parses with docker-compose and agrees with the instance."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
import yaml
from dagster_docker import DockerRunLauncher
from dagster_k8s import K8sRunLauncher
from referencing import Registry
from referencing.jsonschema import DRAFT202012

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[1]
# Dagster's chart: its values schema and default values, vendored (data/helm/SOURCE.md says from where)
CHART = Path(__file__).parent / "data" / "helm"
COMPOSE_ENV = {"POSTGRES_PASSWORD": "compose-pw", "MINIO_ACCESS_KEY": "ak", "MINIO_SECRET_KEY": "sk", "DOCKER_GID": "9"}
# settings of compose itself (and of its sandbox), and MICROCROP_HOME which the image sets
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "DOCKER_GID", "MICROCROP_IMAGE", "MICROCROP_HOME", "SANDBOX_CONTROL_TOKEN"}
# the oracle's key reaches payouts_job's runs alone, never every process (test_security_secrets.py)
PAYOUTS_RUNS_ONLY = {"ORACLE_PRIVATE_KEY", "ORACLE_PRIVATE_KEY_FILE"}
# the receiver admin's key is read by the operator's `microcrop chain` commands, by no Dagster process
OPERATOR_ONLY = {"RECEIVER_ADMIN_PRIVATE_KEY"}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: not-a-real-token}}]
contexts: [{name: test, context: {cluster: test, user: test, namespace: microcrop}}]
current-context: test
"""


def pipeline_settings() -> set[str]:
    """Every setting .env.example lists (what a run reads), without the compose-only ones and the
    signing keys."""
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    return set(names) - COMPOSE_ONLY - PAYOUTS_RUNS_ONLY - OPERATOR_ONLY


def test_docker_instance_launches_each_run_in_a_container_with_every_setting(tmp_path, pg_env):
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["microcrop"]
        missing = pipeline_settings() - set(launcher.env_vars)
        assert not missing, f"run containers would not get {sorted(missing)}"
        assert launcher.container_kwargs["mem_limit"] == "4g"


def helm_values() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())


def chart_instance(values: dict, kubeconfig: Path) -> dict:
    """The dagster.yaml the official chart renders from these values (its configmap-instance,
    _run-launcher.tpl and _concurrency.tpl), for the parts this project sets. Kubeconfig instead of
    in-cluster credentials, which exist only inside a pod."""
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    daemon = values["dagsterDaemon"]
    postgres = values["postgresql"]
    concurrency = values["concurrency"]
    db = {
        "postgres_db": {
            # server and role of this machine: the values' host and role exist only in the cluster
            "username": {"env": "DAGSTER_PG_USERNAME"},
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": {"env": "DAGSTER_PG_HOST"},
            "db_name": {"env": "DAGSTER_PG_DB"},
            "port": {"env": "DAGSTER_PG_PORT"},
            "params": postgres["postgresqlParams"],
            "scheme": postgres["postgresqlScheme"],
        }
    }
    return {
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": db},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage", "config": db},
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": db,
        },
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "load_incluster_config": False,
                "kubeconfig_file": str(kubeconfig),
                "job_namespace": "microcrop",
                "image_pull_policy": k8s["imagePullPolicy"],
                "service_account_name": "microcrop-dagster",
                "dagster_home": "/opt/dagster/dagster_home",
                "instance_config_map": "microcrop-dagster-instance",
                "postgres_password_secret": values["global"]["postgresqlSecretName"],
                "env_config_maps": ["microcrop-dagster-pipeline-env"] + [c["name"] for c in k8s["envConfigMaps"]],
                "env_secrets": [s["name"] for s in k8s["envSecrets"]],
                "labels": k8s["labels"],
                "run_k8s_config": {
                    "container_config": k8s["runK8sConfig"]["containerConfig"],
                    "job_spec_config": {"ttl_seconds_after_finished": 86400},
                },
            },
        },
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "concurrency": {
            "pools": {
                "default_limit": concurrency["pools"]["defaultLimit"],
                "granularity": concurrency["pools"]["granularity"],
            },
            "runs": {
                "max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"],
                "tag_concurrency_limits": concurrency["runs"]["tagConcurrencyLimits"],
            },
        },
        "run_monitoring": {
            "enabled": daemon["runMonitoring"]["enabled"],
            "start_timeout_seconds": daemon["runMonitoring"]["startTimeoutSeconds"],
            "poll_interval_seconds": daemon["runMonitoring"]["pollIntervalSeconds"],
            "max_runtime_seconds": daemon["runMonitoring"]["maxRuntimeSeconds"],
        },
        "run_retries": {
            "enabled": daemon["runRetries"]["enabled"],
            "max_retries": daemon["runRetries"]["maxRetries"],
            "retry_on_asset_or_op_failure": daemon["runRetries"]["retryOnAssetOrOpFailure"],
        },
        "retention": {
            "schedule": {"purge_after_days": values["retention"]["schedule"]["purgeAfterDays"]},
            "sensor": {"purge_after_days": values["retention"]["sensor"]["purgeAfterDays"]},
        },
        "python_logs": {"managed_python_loggers": values["pythonLogs"]["managedPythonLoggers"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def test_helm_values_give_a_k8s_instance_with_the_same_queues(tmp_path, pg_env):
    values = helm_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["loadInclusterConfig"] is True
    assert values["postgresql"]["enabled"] is False and values["dagsterDaemon"]["runCoordinator"]["enabled"]
    # the chart refuses run limits in both places
    assert not values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "microcrop_assets.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(chart_instance(values, kubeconfig)))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "microcrop"
        assert launcher.env_secrets == ["microcrop-secrets"]
        assert launcher.run_k8s_config["container_config"]["resources"]["limits"]["memory"] == "4Gi"
        instance.get_runs(limit=1)  # storage works with the chart's scheme
        assert instance.run_monitoring_max_runtime_seconds == 14400
        run_queue = instance.get_concurrency_config().run_queue_config
        k8s_queues = {limit["value"] for limit in run_queue.tag_concurrency_limits}

    docker = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    docker_queues = {limit["value"] for limit in docker["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert k8s_queues == docker_queues == {"default", "weather", "satellite", "damage", "priority"}
    assert values["dagsterDaemon"]["runRetries"]["maxRetries"] == docker["run_retries"]["max_retries"]


def coalesce(defaults: dict, overrides: dict) -> dict:
    """Helm's merge of a values file over the chart's defaults: maps merge key by key, anything else
    (lists included) replaces, and null removes the key."""
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = value
    return merged


def chart_validator() -> jsonschema.protocols.Validator:
    """A validator for the chart's schema that never downloads. The schema's Kubernetes types are
    $refs into the Kubernetes JSON schema that Helm fetches at install time; here every one of them
    resolves to the empty schema, so only the chart's own constraints on those fields apply."""
    schema = json.loads((CHART / "dagster-1.13.27.values.schema.json").read_text())
    documents: dict[str, dict] = {}
    for ref in re.findall(r'"\$ref": "(https://[^"]+)"', json.dumps(schema)):
        url, _, pointer = ref.partition("#")
        node = documents.setdefault(url, {})
        for part in pointer.strip("/").split("/"):
            node = node.setdefault(part, {})
    registry = Registry().with_resources(
        (url, DRAFT202012.create_resource(document)) for url, document in documents.items()
    )
    # no $schema in the file: jsonschema's default, Draft 2020-12 (the dialect of its $defs)
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema, registry=registry)


def schema_errors(validator: jsonschema.protocols.Validator, values: dict) -> list[str]:
    """Path and message of every error. A value matching none of an anyOf (the schema's optional
    fields) gets the errors of the branches for its own type, which name the bad key or value."""

    def leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
        if not error.context:
            return [error]
        branches: dict[int, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        # the other branches fail on `type` at the value itself
        fitting = [subs for subs in branches.values() if not any(s.validator == "type" and not s.path for s in subs)]
        return [leaf for subs in fitting or branches.values() for sub in subs for leaf in leaves(sub)]

    return [f"{leaf.json_path}: {leaf.message}" for error in validator.iter_errors(values) for leaf in leaves(error)]


def test_helm_values_validate_against_the_chart_schema():
    """What `helm install` checks before rendering: our values merged over the chart's defaults
    satisfy the chart's values.schema.json, with the settings the deployment relies on switched on."""
    validator = chart_validator()
    defaults = yaml.safe_load((CHART / "dagster-1.13.27.values.yaml").read_text())
    assert not schema_errors(validator, defaults), "the vendored defaults and schema are not one chart"
    values = coalesce(defaults, helm_values())
    errors = schema_errors(validator, values)
    assert not errors, "deploy/helm/values.yaml breaks the chart schema:\n" + "\n".join(errors)
    # the schema is applied: a wrong type where ours has a number is an error at that path
    wrong = coalesce(values, {"concurrency": {"runs": {"maxConcurrentRuns": "30"}}})
    assert schema_errors(validator, wrong) == [
        "$.concurrency.runs.maxConcurrentRuns: '30' is not of type 'integer'",
        "$.concurrency.runs.maxConcurrentRuns: '30' is not of type 'null'",
    ]

    docker = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    # the code server: the chart's subchart runs our single deployment, the image pinned to a tag
    user_code = values["dagster-user-deployments"]
    assert user_code["enabled"] and user_code["enableSubchart"]
    (deployment,) = user_code["deployments"]
    assert deployment["image"]["repository"] == "ghcr.io/microcrop/microcrop-assets" and deployment["image"]["tag"]
    # run Jobs get the settings secret; the oracle's key reaches none of the chart's processes
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": "microcrop-secrets"}]
    assert "microcrop-oracle-key" not in json.dumps(values)
    # run monitoring, on in the chart's daemon with the Docker instance's timings
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["startTimeoutSeconds"] == docker["run_monitoring"]["start_timeout_seconds"]
    assert monitoring["pollIntervalSeconds"] == docker["run_monitoring"]["poll_interval_seconds"]
    # retention: the chart renders it only when enabled (its default is off)
    assert values["retention"]["enabled"] is True
    assert values["retention"]["schedule"]["purgeAfterDays"] == docker["retention"]["schedule"]["purge_after_days"]
    sensor_days = values["retention"]["sensor"]["purgeAfterDays"]
    assert docker["retention"]["sensor"]["purge_after_days"].items() <= sensor_days.items()
    # run concurrency: the queued coordinator carries no limits of its own (the chart refuses limits in
    # both places); the concurrency block, off by default in the chart, holds them, per queue below the total
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] is None and queued["tagConcurrencyLimits"] == []
    runs = values["concurrency"]["runs"]
    assert values["concurrency"]["enabled"] is True and runs["maxConcurrentRuns"] > 0
    assert all(0 < limit["limit"] <= runs["maxConcurrentRuns"] for limit in runs["tagConcurrencyLimits"])


def compose_config(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "compose.yaml"), *args, "config"],
        env={**base, **(env if env is not None else COMPOSE_ENV)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_compose_file_parses_and_matches_the_docker_instance():
    result = compose_config("--profile", "sandbox")
    assert result.returncode == 0, result.stderr
    compose = yaml.safe_load(result.stdout)
    services = compose["services"]
    assert set(services) == {
        "timescaledb", "minio", "redis", "sandbox", "dagster-init", "code-server", "webserver", "daemon",
    }  # fmt: skip
    for name, service in services.items():
        if name != "dagster-init":  # one-shot
            assert service["healthcheck"]["test"], name
    assert {"timescaledb", "minio", "redis"} <= set(compose["volumes"])

    instance = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    assert compose["networks"]["microcrop"]["name"] == instance["run_launcher"]["config"]["network"]
    image = services["code-server"]["image"]
    assert services["code-server"]["environment"]["DAGSTER_CURRENT_IMAGE"] == image == services["daemon"]["image"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in {
        f"{v['source']}:{v['target']}" if isinstance(v, dict) else v.rsplit(":", 1)[0] if v.count(":") > 1 else v
        for v in services["daemon"]["volumes"]
    }
    assert services["daemon"]["group_add"] == ["9"]
    # the services that run pipeline code get every setting runs read, and the same values
    for name in ("code-server", "daemon", "webserver"):
        missing = pipeline_settings() - set(services[name]["environment"])
        assert not missing, f"{name} lacks {sorted(missing)}"
    assert services["daemon"]["environment"]["DAGSTER_PG_PASSWORD"] == "compose-pw"
    assert services["webserver"]["command"][-1] == "workspace-compose.yaml"
    assert (ROOT / "deploy" / "workspace-compose.yaml").exists()


def test_env_example_copied_to_env_gives_empty_settings_not_comments(tmp_path):
    """`cp .env.example .env`: compose reads `KEY=   # note` as the value '# note', so every comment
    stands on its own line and every empty setting stays empty."""
    result = compose_config("--env-file", str(ROOT / ".env.example"))
    assert result.returncode == 0, result.stderr
    environment = yaml.safe_load(result.stdout)["services"]["code-server"]["environment"]
    commented = {k: v for k, v in environment.items() if "#" in str(v)}
    assert not commented
    assert environment["MICROCROP_PLOTS_SOURCE"] in ("", None) and environment["BASE_RPC_URL"] in ("", None)
    assert environment["WEATHER_FETCH_INTERVAL"] in ("5", 5)


def test_compose_names_a_missing_secret():
    result = compose_config(env={"MINIO_ACCESS_KEY": "ak", "MINIO_SECRET_KEY": "sk", "DOCKER_GID": "9"})
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr
