"""Payout assets: daily proofs of triggered assessments (IPFS via Pinata), then the payouts ledger (chain)."""

import json

import dagster as dg

from microcrop_assets import settings
from microcrop_assets.damage.assets import damage_assessments
from microcrop_assets.partitions import daily_partitions, day_keyed_schedule
from microcrop_assets.payouts.ledger import ledger_counts, settle_payouts
from microcrop_assets.payouts.proving import prove_day
from microcrop_assets.resources.chain import ChainResource
from microcrop_assets.resources.minio import ObjectStoreResource
from microcrop_assets.resources.pinata import PinataResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource

# dagster/max_runtime: pins go out at Pinata's 60/min in directories of 1,000 proofs, and payouts wait
# for receipts (a few blocks each); 1800 s bounds either on a large day
PAYOUT_TAGS = {"microcrop/queue": "damage", "dagster/max_runtime": "1800"}
# The oracle's signing key reaches the runs of payouts_job and no other process: not the webserver, the
# daemon or the code server, nor the runs whose GDAL parses vendor GeoTIFFs. Docker: the volume
# microcrop-oracle-key mounted into this job's run containers (read by microcrop_assets.ops.launcher);
# Kubernetes: the secret microcrop-oracle-key in this job's run pods (read by dagster-k8s). A run of the
# payouts asset outside this job finds no key: its payouts wait in the ledger with that reason.
ORACLE_KEY_SECRET = "microcrop-oracle-key"
ORACLE_KEY_DIR = f"/run/secrets/{ORACLE_KEY_SECRET}"
ORACLE_KEY_TAGS = {
    "dagster-docker/container_context": json.dumps(
        {
            "env_vars": [f"ORACLE_PRIVATE_KEY_FILE={ORACLE_KEY_DIR}/ORACLE_PRIVATE_KEY"],
            "container_kwargs": {"volumes": {ORACLE_KEY_SECRET: {"bind": ORACLE_KEY_DIR, "mode": "ro"}}},
        }
    ),
    "dagster-k8s/config": json.dumps(
        {
            "container_config": {
                "env": [
                    {
                        "name": "ORACLE_PRIVATE_KEY",
                        "value_from": {"secret_key_ref": {"name": ORACLE_KEY_SECRET, "key": "ORACLE_PRIVATE_KEY"}},
                    }
                ]
            }
        }
    ),
}


@dg.asset(
    group_name="payouts",
    kinds={"postgres", "ipfs", "s3"},
    partitions_def=daily_partitions,
    deps=[damage_assessments],
    pool="pinata",
    check_specs=[
        dg.AssetCheckSpec(
            "triggered_assessments_proven",
            asset="payout_proofs",
            description="every triggered assessment of the day carries a pinned proof",
        )
    ],
)
def payout_proofs(
    context: dg.AssetExecutionContext,
    timescaledb: TimescaleDBResource,
    pinata: PinataResource,
    minio: ObjectStoreResource,
) -> dg.MaterializeResult:
    """A canonical proof per triggered assessment of the day, validated, pinned in directory pins whose
    CIDs match the local computation, copied to object storage, and recorded on the assessment."""
    day = context.partition_time_window.start.date()
    summary = prove_day(timescaledb, pinata, minio, day)
    metadata = {
        "proofs": summary.proven,
        "pin_requests": summary.pin_requests,
        "already_recorded": summary.already_recorded,
        "directory_cids": dg.MetadataValue.json(summary.directories),
        "refused": dg.MetadataValue.json(summary.refused),
    }
    if summary.refused:
        # the valid proofs are pinned and recorded; the run still fails so nobody misses a refused one
        raise dg.Failure(
            description=f"{len(summary.refused)} proof(s) of {day} refused: "
            + "; ".join(summary.refused.values())[:2000],
            metadata=metadata,
        )
    unproven = timescaledb.read_frame(
        "SELECT assessment_id FROM damage_assessments WHERE day = :day AND triggered AND proof_cid IS NULL",
        {"day": day},
    )["assessment_id"].tolist()
    check = dg.AssetCheckResult(
        check_name="triggered_assessments_proven",
        passed=not unproven,
        metadata={"unproven": dg.MetadataValue.json(unproven)},
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


@dg.asset(
    group_name="payouts",
    kinds={"postgres"},
    deps=[payout_proofs],
    pool="chain",
    check_specs=[
        dg.AssetCheckSpec("no_failed_payouts", asset="payouts", description="no payout in the ledger has failed")
    ],
)
def payouts(
    context: dg.AssetExecutionContext, timescaledb: TimescaleDBResource, chain: ChainResource
) -> dg.MaterializeResult:
    """The payouts ledger: every triggered, proven assessment reported once to the receiver contract."""
    summary = settle_payouts(timescaledb, chain)
    if summary.reason:
        context.log.warning(f"payouts wait: {summary.reason}")
    for assessment_id, error in summary.failed.items():
        context.log.error(f"payout of assessment {assessment_id} failed: {error}")
    counts = ledger_counts(timescaledb)
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name="no_failed_payouts",
                passed=counts.get("failed", 0) == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"failed": counts.get("failed", 0)},
            )
        ],
        metadata={
            "chain": chain.describe(),
            "enqueued": summary.enqueued,
            "transactions_sent": summary.broadcast,
            "confirmed": len(summary.confirmed),
            "recovered_from_chain": len(summary.recovered),
            "failed": dg.MetadataValue.json(summary.failed),
            "waiting": dg.MetadataValue.json(summary.waiting),
            "reason": summary.reason or "",
            "ledger": dg.MetadataValue.json(counts),
        },
    )


payout_proofs_job = dg.define_asset_job(
    "payout_proofs_job", selection=[payout_proofs], tags=PAYOUT_TAGS, description="Pin one day's payout proofs."
)
payouts_job = dg.define_asset_job(
    "payouts_job",
    selection=[payouts],
    tags={**PAYOUT_TAGS, **ORACLE_KEY_TAGS},
    description="Send pending payouts to the chain.",
)


payout_proofs_nightly = day_keyed_schedule(
    "payout_proofs_nightly",
    payout_proofs_job,
    "0 2 * * *",
    "payout-proofs",
    days_back=1,
    description="Yesterday's proofs, after the nightly damage run (01:30 UTC).",
)


def every_minutes_cron(minutes: int) -> str:
    """A cron for 'every N minutes': steps under an hour, whole hours above (cron minutes stop at 59)."""
    if minutes < 60:
        return f"*/{minutes} * * * *"
    if minutes % 60 or minutes > 24 * 60:
        raise ValueError(f"DAMAGE_PAYOUT_CHECK_INTERVAL={minutes}: above 59 minutes use whole hours up to 1440")
    return f"0 */{minutes // 60} * * *"


payouts_every_interval = dg.ScheduleDefinition(
    name="payouts_every_interval",
    job=payouts_job,
    cron_schedule=every_minutes_cron(settings.env_int("DAMAGE_PAYOUT_CHECK_INTERVAL", 10)),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every DAMAGE_PAYOUT_CHECK_INTERVAL minutes: enqueue, send and confirm payouts.",
)
