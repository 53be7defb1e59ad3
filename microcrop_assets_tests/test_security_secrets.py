"""Who holds which secret, read from the deployed configurations: the oracle's signing key reaches the
runs of payouts_job and no other process (compose services, the Docker run launcher, the Helm chart's
run launcher and user deployment), the chain resource reads it there, and health and alert texts,
chain errors, a payouts run's log and ledger, and proofs never show a signing key."""

import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass

import dagster as dg
import docker
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.launcher import LaunchRunContext
from dagster_k8s.job import construct_dagster_k8s_job
from eth_account import Account
from web3 import EthereumTesterProvider, Web3
from web3.providers import BaseProvider

from microcrop_assets.definitions import defs
from microcrop_assets.defs.monitoring.health import first_line
from microcrop_assets.defs.monitoring.sensors import run_failure_alert
from microcrop_assets.defs.payouts.assets import payout_proofs, payouts
from microcrop_assets.defs.payouts.jobs import ORACLE_KEY_DIR, ORACLE_KEY_SECRET, ORACLE_KEY_TAGS
from microcrop_assets.deployment.launcher import CONTAINER_CONTEXT_TAG
from microcrop_assets.proofs.document import canonical_bytes
from microcrop_assets.resources.chain import ChainError, ChainResource
from microcrop_assets.resources.environment import build_resources
from microcrop_assets.resources.http import REDACTED
from microcrop_assets_tests.fixtures.clients import pinata
from microcrop_assets_tests.fixtures.monitoring import http_receiver
from microcrop_assets_tests.fixtures.proofs import DAY, assess_plots
from microcrop_assets_tests.test_deploy_instances import (
    COMPOSE_ENV,
    KUBECONFIG,
    ROOT,
    chart_instance,
    compose_config,
    helm_values,
)

PAYOUTS_JOB = "payouts_job"
KEY_FILE = f"{ORACLE_KEY_DIR}/ORACLE_PRIVATE_KEY"
JOBS = sorted(job.name for job in defs.jobs)


def new_key() -> str:
    """A private key no earlier test registered for redaction (the registry lives as long as the process)."""
    return "0x" + secrets.token_hex(32)


# -- finding 9: the oracle's key reaches payouts_job's runs only ----------------------------------------


@pytest.mark.integration
def test_no_compose_service_holds_the_oracle_key():
    key = new_key()
    env = {**COMPOSE_ENV, "ORACLE_PRIVATE_KEY": key, "ORACLE_PRIVATE_KEY_FILE": "/etc/microcrop/oracle.key"}
    result = compose_config("--profile", "sandbox", env=env)
    assert result.returncode == 0, result.stderr
    # the rendered stack: every service's environment (env files inlined), volumes and commands
    assert key not in result.stdout and key[2:] not in result.stdout
    assert "ORACLE_PRIVATE_KEY" not in result.stdout
    assert ORACLE_KEY_SECRET not in result.stdout  # no service mounts the key's volume
    assert {"code-server", "webserver", "daemon"} <= set(yaml.safe_load(result.stdout)["services"])


@dataclass
class Container:
    id: str

    def start(self) -> None:
        """Nothing runs: the tests read what the container was created with."""


class RecordingDocker:
    """docker-py's client as far as the run launcher uses it (containers.create, then start)."""

    def __init__(self):
        self.created: list[dict] = []  # the keyword arguments of each containers.create
        self.containers = self

    def create(self, **kwargs) -> Container:
        self.created.append(kwargs)
        return Container(f"container-{len(self.created)}")


def create_run(instance: dg.DagsterInstance, job_name: str, tags: dict | None = None, **origin) -> dg.DagsterRun:
    """A run of `job_name` as a schedule or the launchpad creates it: the job's tags plus any added."""
    job_def = defs.resolve_job_def(job_name)
    return instance.create_run_for_job(job_def, tags={**job_def.run_tags, **(tags or {})}, **origin)


def launch(instance: dg.DagsterInstance, docker_client: RecordingDocker, job_name: str, tags: dict | None = None):
    """Launch a run of `job_name` through the instance's run launcher; what its container is created with."""
    repository = ReconstructableRepository.for_module(
        "microcrop_assets.definitions", "defs", str(ROOT), container_image="microcrop-assets:test"
    )
    job = repository.get_reconstructable_job(job_name)
    run = create_run(instance, job_name, tags, job_code_origin=job.get_python_origin())
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return docker_client.created[-1]


@pytest.fixture
def daemon_env(pg_env, monkeypatch):
    """Every setting the Docker launcher passes to runs set (runs are created with their resources'
    config, and the launcher copies these names from its environment)."""
    names = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())["run_launcher"]["config"]["env_vars"]
    for name in names:
        monkeypatch.setenv(name, os.environ.get(name) or f"value-of-{name}")


@pytest.fixture
def docker_instance(tmp_path, daemon_env, monkeypatch):
    """The compose stack's instance (deploy/dagster.yaml), its launcher on a recording docker client,
    in a daemon whose environment wrongly holds the key: it must still not reach a container."""
    monkeypatch.setenv("ORACLE_PRIVATE_KEY", leaked := new_key())
    recorded = RecordingDocker()
    monkeypatch.setattr(docker.client, "from_env", lambda: recorded)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance, recorded, leaked


@pytest.mark.integration
def test_docker_launcher_mounts_the_key_into_payouts_runs_only(docker_instance):
    instance, docker_client, leaked = docker_instance
    for job_name in JOBS:
        container = launch(instance, docker_client, job_name)
        environment = container["environment"]
        assert "ORACLE_PRIVATE_KEY" not in environment, job_name
        assert leaked not in json.dumps(container, default=str), job_name
        assert container["mem_limit"] == "4g" and container["labels"]["org.microcrop.role"] == "dagster-run"
        if job_name == PAYOUTS_JOB:
            assert environment["ORACLE_PRIVATE_KEY_FILE"] == KEY_FILE
            assert container["volumes"] == {ORACLE_KEY_SECRET: {"bind": ORACLE_KEY_DIR, "mode": "ro"}}
        else:
            assert "ORACLE_PRIVATE_KEY_FILE" not in environment, job_name
            assert "volumes" not in container, job_name


@pytest.mark.integration
def test_a_tag_added_to_one_run_does_not_mount_the_key(docker_instance):
    instance, docker_client, _ = docker_instance
    # what someone could add from the launchpad: the launcher reads the job's definition, not the run
    added = {CONTAINER_CONTEXT_TAG: ORACLE_KEY_TAGS[CONTAINER_CONTEXT_TAG]}
    container = launch(instance, docker_client, "ndvi_rasters_job", tags=added)
    assert "volumes" not in container and "ORACLE_PRIVATE_KEY_FILE" not in container["environment"]


@pytest.mark.integration
def test_helm_gives_the_key_secret_to_payouts_pods_only(tmp_path, daemon_env):
    values = helm_values()
    rendered = yaml.safe_dump(values)  # the values without their comments
    assert ORACLE_KEY_SECRET not in rendered and "ORACLE_PRIVATE_KEY" not in rendered
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    # the code server's sources, which includeConfigInLaunchedRuns also gives every run
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]
    assert [s["name"] for s in deployment["envSecrets"]] == ["microcrop-secrets"]

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(chart_instance(values, kubeconfig)))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        for job_name in JOBS:
            run = create_run(instance, job_name)
            context = launcher.get_container_context_for_run(run)
            pod_job = construct_dagster_k8s_job(
                job_config=context.get_k8s_job_config(job_image="microcrop-assets:test", run_launcher=launcher),
                args=["dagster", "api", "execute_run"],
                job_name=f"run-{job_name}".replace("_", "-"),
                pod_name=f"run-{job_name}".replace("_", "-"),
                component="run_worker",
                user_defined_k8s_config=context.run_k8s_config,
            )
            (container,) = pod_job.spec.template.spec.containers
            secret_refs = [e.secret_ref.name for e in container.env_from or [] if e.secret_ref]
            assert secret_refs == ["microcrop-secrets"], job_name
            from_secrets = {
                e.name: e.value_from.secret_key_ref.name
                for e in container.env or []
                if e.value_from and e.value_from.secret_key_ref
            }
            # every secret a run pod reads: the instance's database password, and the key in payouts' only
            expected = {"DAGSTER_PG_PASSWORD": values["global"]["postgresqlSecretName"]}
            if job_name == PAYOUTS_JOB:
                expected["ORACLE_PRIVATE_KEY"] = ORACLE_KEY_SECRET
            assert from_secrets == expected, job_name
            assert not pod_job.spec.template.spec.volumes, job_name


@pytest.mark.unit
def test_payouts_runs_read_the_key_from_its_file(tmp_path, monkeypatch):
    provider = EthereumTesterProvider()
    node = ChainResource.in_process(provider)  # registers the provider under an in-process:// URL
    key = new_key()
    key_file = tmp_path / "ORACLE_PRIVATE_KEY"
    key_file.write_text(key + "\n")  # as `install` or a Kubernetes secret leaves it
    settings = {
        "BASE_RPC_URL": node.rpc_url,
        "BASE_CHAIN_ID": str(Web3(provider).eth.chain_id),
        "ORACLE_PRIVATE_KEY_FILE": str(key_file),
        "PAYOUT_RECEIVER_ADDRESS": Account.create().address,
    }
    monkeypatch.delenv("ORACLE_PRIVATE_KEY", raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    # bound as the definitions bind it in a payouts run's process
    chain = build_resources()["chain"].process_config_and_initialize()
    assert chain.missing() == []
    assert chain.client().sender == Account.from_key(key).address

    key_file.unlink()
    absent = build_resources()["chain"].process_config_and_initialize()
    with pytest.raises(ChainError, match=f"ORACLE_PRIVATE_KEY_FILE {key_file}"):
        absent.client()
    # the code server and every other run: no key, the ledger waits naming it
    monkeypatch.delenv("ORACLE_PRIVATE_KEY_FILE")
    assert build_resources()["chain"].process_config_and_initialize().missing() == ["ORACLE_PRIVATE_KEY"]


# -- finding 10: health and alert texts never show a signing key ------------------------------------------


@dg.asset
def payouts_probe() -> None:
    key = os.environ["ORACLE_PRIVATE_KEY"]
    raise RuntimeError(f"node refused the transaction signed with {key} (raw key {key[2:]})")


@pytest.mark.integration
def test_health_and_alert_texts_never_show_a_signing_key(monkeypatch):
    oracle, admin = new_key(), new_key()
    monkeypatch.setenv("ORACLE_PRIVATE_KEY", oracle)
    monkeypatch.setenv("RECEIVER_ADMIN_PRIVATE_KEY", admin)

    detail = first_line(RuntimeError(f"chain down; oracle {oracle}, admin {admin[2:]}"))
    assert "chain down" in detail and oracle[2:] not in detail and admin[2:] not in detail

    with http_receiver("/hooks/alerts") as (url, received), dg.instance_for_test() as instance:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
        job = dg.define_asset_job("payouts_probe_job", selection=[payouts_probe])
        result = (
            dg.Definitions(assets=[payouts_probe], jobs=[job])
            .resolve_job_def("payouts_probe_job")
            .execute_in_process(instance=instance, raise_on_error=False)
        )
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        run_failure_alert(
            dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert",
                dagster_instance=instance,
                dagster_run=instance.get_run_by_id(result.run_id),
                dagster_event=failure,
            ).for_run_failure()
        )
    (payload,) = received
    assert "node refused the transaction" in payload["error"]
    assert oracle[2:] not in json.dumps(payload)


# -- issue 17: a chain failure quoting a signing key shows neither form of it; no proof carries it -------

CHAIN_ID = 84532


class KeyQuotingNode(BaseProvider):
    """A node that serves `chain_id` and fails every other request with `text` in the error: what a
    proxy echoing the request or a library formatting its arguments could put in a message."""

    def __init__(self, text: str, chain_id: int = CHAIN_ID):
        super().__init__()
        self.text = text
        self.chain_id = chain_id

    def make_request(self, method, params):
        if method == "eth_chainId":
            return {"jsonrpc": "2.0", "id": 0, "result": hex(self.chain_id)}
        raise ConnectionError(f"{method} refused: {self.text}")


def quoting(key: str) -> str:
    return f"signed by {key} (raw {key[2:]})"


QUOTED_REDACTED = f"refused: signed by {REDACTED} (raw {REDACTED})"  # what `quoting` must come out as


@pytest.mark.unit
def test_chain_errors_quoting_a_signing_key_show_neither_form(tmp_path):
    receiver = Account.create().address
    oracle, filed, admin = new_key(), new_key(), new_key()
    key_file = tmp_path / "ORACLE_PRIVATE_KEY"
    key_file.write_text(filed + "\n")
    by_field = ChainResource.in_process(
        KeyQuotingNode(quoting(oracle)), chain_id=CHAIN_ID, private_key=oracle, receiver_address=receiver
    )
    by_file = ChainResource.in_process(
        KeyQuotingNode(quoting(filed)), chain_id=CHAIN_ID, private_key_file=str(key_file), receiver_address=receiver
    )
    admin_chain = ChainResource.in_process(KeyQuotingNode(quoting(admin)), chain_id=CHAIN_ID, receiver_address=receiver)
    failures = {}
    for key, chain in ((oracle, by_field), (filed, by_file)):
        with pytest.raises(ChainError, match="reading the oracle's nonce failed: ConnectionError") as caught:
            chain.client().mined_nonce()
        failures[key] = caught.value
    with pytest.raises(ChainError, match="reading the admin's nonce failed: ConnectionError") as caught:
        admin_chain.admin(admin).register_policies([])
    failures[admin] = caught.value
    for key, error in failures.items():
        text = f"{error} {error!r}"
        assert str(error).endswith(QUOTED_REDACTED) and key[2:] not in text, text


@pytest.mark.integration
def test_a_payouts_run_on_a_node_quoting_the_key_logs_no_key(proven, caplog):
    caplog.set_level(logging.DEBUG)  # web3's own loggers too
    key = new_key()
    chain = ChainResource.in_process(
        KeyQuotingNode(quoting(key)), chain_id=CHAIN_ID, private_key=key, receiver_address=Account.create().address
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize([payouts], resources={"timescaledb": proven, "chain": chain}, instance=instance)
        logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    metadata = result.asset_materializations_for_node("payouts")[0].metadata
    with proven.begin() as conn:
        ledger = conn.execute(sa.text("SELECT last_error FROM payouts")).scalars().all()
    # the node's failure reached the run's log and both payouts' ledger rows, key redacted
    [waiting] = [message for message in logged if message.startswith("payouts wait: ")]
    assert waiting.endswith(QUOTED_REDACTED), waiting
    assert len(ledger) == 2 and all(error.endswith(QUOTED_REDACTED) for error in ledger), ledger
    text = caplog.text + "\n".join(logged) + repr(metadata) + repr(ledger)
    assert key[2:] not in text


@pytest.mark.integration
def test_proofs_carry_no_signing_key(clean_assessments, sandbox, redis_resource, s3_store, monkeypatch):
    key = new_key()
    # proofs are built in payouts_job's runs: the runs that hold the oracle's key
    monkeypatch.setenv("ORACLE_PRIVATE_KEY", key)
    assessed = assess_plots(clean_assessments, [("plot-a", 0.25, 0.42), ("plot-b", 0.5, None), ("plot-c", 0.0, 0.61)])
    triggered = sorted(row["assessment_id"] for row in assessed if row["triggered"])
    client = pinata(sandbox, redis_resource)
    resources = {
        "timescaledb": clean_assessments,
        "pinata": client,
        "object_store": s3_store,
        "chain": ChainResource(chain_id=CHAIN_ID, private_key=key),
    }
    assert dg.materialize([payout_proofs], partition_key=DAY.isoformat(), resources=resources).success
    with clean_assessments.begin() as conn:
        proofs = conn.execute(
            sa.text("SELECT assessment_id, proof_cid, proof_key FROM damage_assessments WHERE proof_cid IS NOT NULL")
        ).all()
    assert sorted(proof.assessment_id for proof in proofs) == triggered and len(triggered) == 2
    for proof in proofs:
        # the canonical bytes as pinned and as copied to object storage
        for data in (client.fetch(proof.proof_cid), s3_store.get_bytes(proof.proof_key)):
            assert canonical_bytes(json.loads(data)) == data
            assert key[2:].encode() not in data.lower(), proof.assessment_id
