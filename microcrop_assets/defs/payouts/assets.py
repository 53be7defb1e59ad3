"""Payout assets: daily proofs of triggered assessments (IPFS via Pinata), then the payouts ledger (chain)."""

import dagster as dg

from microcrop_assets.defs.damage.assets import damage_assessments
from microcrop_assets.defs.payouts.ledger import ledger_counts, settle_payouts
from microcrop_assets.defs.payouts.proving import prove_day
from microcrop_assets.defs.shared import daily_partitions
from microcrop_assets.resources.chain import ChainResource
from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.resources.pinata import PinataResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource

# dagster/max_runtime: pins go out at Pinata's 60/min in directories of 1,000 proofs, and payouts wait
# for receipts (a few blocks each); 1800 s bounds either on a large day
PAYOUT_TAGS = {"microcrop/queue": "damage", "dagster/max_runtime": "1800"}


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
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    """A canonical proof per triggered assessment of the day, validated, pinned in directory pins whose
    CIDs match the local computation, copied to object storage, and recorded on the assessment."""
    day = context.partition_time_window.start.date()
    summary = prove_day(timescaledb, pinata, object_store, day)
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
