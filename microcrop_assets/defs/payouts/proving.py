"""One day's payout proofs: recompute, validate, pin, copy and record every triggered assessment's proof.

A proof is refused before anything is sent to Pinata when the stored outputs differ from what its
inputs recompute, when its recorded inputs differ from what the source tables hold, or when it fails
its JSON Schema; the day's other proofs go on. An assessment that has a proof keeps it (payouts
anchor its CID on chain): a rerun sends nothing for it, and proofs whose records were lost are pinned
again as the same bytes, so Pinata answers isDuplicate and the same CIDs are recorded.
"""

import datetime as dt
import json
from dataclasses import dataclass, field

import sqlalchemy as sa

from microcrop_assets.defs.damage.assets import assessment_inputs
from microcrop_assets.proofs.document import (
    Difference,
    ProofError,
    build_proof,
    document_differences,
    recompute_outputs,
    weather_chain,
)
from microcrop_assets.proofs.pinning import ProofDirectory, pin_directory, proof_directories, proof_file, store_copy
from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.resources.pinata import PinataResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.science.policy import resolve_terms


@dataclass
class DayProofs:
    day: dt.date
    proven: int = 0
    directories: list[str] = field(default_factory=list)  # directory CIDs pinned
    pin_requests: int = 0
    already_recorded: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # assessment id -> why


def triggered_assessments(db: TimescaleDBResource, day: dt.date) -> list[dict]:
    with db.begin() as conn:
        rows = conn.execute(
            sa.text("SELECT * FROM damage_assessments WHERE day = :day AND triggered ORDER BY assessment_id"),
            {"day": day},
        ).mappings()
        return [dict(row) for row in rows]


def prove_day(db: TimescaleDBResource, pinata: PinataResource, store: ObjectStoreResource, day: dt.date) -> DayProofs:
    summary = DayProofs(day)
    proofs = []
    unproven = []
    for row in triggered_assessments(db, day):
        if row["proof_cid"] is None:
            unproven.append(row)
        else:
            summary.already_recorded += 1
    # the inputs as the source tables (plots, weather_indices, daily_ndvi, ndvi_baselines) give them now
    sources = {document["plot_id"]: document for document in assessment_inputs(db, day)} if unproven else {}
    chains = weather_chains(db, day, [row["plot_id"] for row in unproven])
    recomputed = recompute_outputs([row["inputs"] for row in unproven])
    counted = _counted_differences(db, unproven)
    for row, outputs in zip(unproven, recomputed, strict=True):
        try:
            chain = chains[row["plot_id"]]
            if isinstance(chain, ProofError):
                raise chain
            _, data = build_proof(row["inputs"], row, chain, outputs)
            _check_against_sources(row, sources.get(row["plot_id"]), counted[row["assessment_id"]])
        except ProofError as error:
            summary.refused[row["assessment_id"]] = str(error)
            continue
        proofs.append(proof_file(row["assessment_id"], data))
    for directory in proof_directories(day, proofs):
        pin_directory(pinata, directory)
        summary.pin_requests += 1
        keys = {proof.assessment_id: store_copy(store, proof) for proof in directory.files}
        _record(db, directory, keys)
        summary.directories.append(directory.cid)
    summary.proven = len(proofs)
    return summary


# the plot weather day's stations and weights, and the policy's layers: the damage inputs leave them here
_WEATHER_CHAIN_SQL = """
SELECT p.plot_id, p.crop, p.policy_terms::text AS policy_terms, w.stations::text AS stations,
       w.weights::text AS station_weights
FROM plots p LEFT JOIN weather_indices w ON w.plot_id = p.plot_id AND w.day = :day
WHERE p.plot_id = ANY(:plot_ids)
"""


def weather_chains(db: TimescaleDBResource, day: dt.date, plot_ids: list[str]) -> dict[str, dict | ProofError]:
    """Per plot, the `weather_chain` of its proof, joined from weather_indices and plots.policy_terms
    (or why it cannot be: that plot's proof alone is refused)."""
    if not plot_ids:
        return {}
    with db.begin() as conn:
        rows = conn.execute(sa.text(_WEATHER_CHAIN_SQL), {"day": day, "plot_ids": sorted(set(plot_ids))}).all()
    chains: dict[str, dict | ProofError] = {
        plot_id: ProofError(f"plot {plot_id} is not in the plots table: no policy terms for its weather chain")
        for plot_id in plot_ids
    }
    for row in rows:
        # numbers as the decimal text jsonb holds, so the proof carries them exactly
        weights = json.loads(row.station_weights or "[]", parse_float=str, parse_int=str)
        terms = resolve_terms(row.crop, json.loads(row.policy_terms))
        try:
            chains[row.plot_id] = weather_chain(terms, json.loads(row.stations or "null"), weights)
        except ProofError as error:
            chains[row.plot_id] = ProofError(f"plot {row.plot_id} on {day}: {error}")
    return chains


_COUNTED_SQL = """
SELECT assessment_id, plot_id, season_start, day, payout_micro_usdc FROM damage_assessments
WHERE assessment_id = ANY(:ids)
"""


def _counted_differences(db: TimescaleDBResource, rows: list[dict]) -> dict[str, list[Difference]]:
    """Per assessment: where the payouts its `season_paid` counts differ from the stored rows (each must
    still exist, of the same plot-season, with the payout it was counted at)."""
    listed = {a["assessment_id"] for row in rows for a in row["inputs"]["season_paid"]["assessments"]}
    stored = {}
    if listed:
        with db.begin() as conn:
            stored = {r.assessment_id: r for r in conn.execute(sa.text(_COUNTED_SQL), {"ids": sorted(listed)})}
    differences = {}
    for row in rows:
        found = []
        for counted in row["inputs"]["season_paid"]["assessments"]:
            other = stored.get(counted["assessment_id"])
            field = f"season_paid.assessments.{counted['assessment_id']}"
            actual = (
                None
                if other is None or other.plot_id != row["plot_id"] or other.season_start != row["season_start"]
                else other.payout_micro_usdc
            )
            if actual != counted["payout_micro_usdc"]:
                found.append(Difference(field, actual, counted["payout_micro_usdc"], ("tables say", "recorded")))
        differences[row["assessment_id"]] = found
    return differences


def _check_against_sources(row: dict, source: dict | None, counted: list[Difference]) -> None:
    """Every recorded input must still be what its table says; otherwise the proof is refused."""
    if source is None:
        raise ProofError(
            f"assessment {row['assessment_id']}: plot {row['plot_id']} is no longer active and in season on"
            f" {row['day']} in the plots table, so its inputs cannot be checked against their sources"
        )
    recorded = {k: v for k, v in row["inputs"].items() if k != "season_paid"}  # read under the ledger's lock
    differences = document_differences(source, recorded, ("tables say", "recorded")) + counted
    if differences:
        raise ProofError(
            f"assessment {row['assessment_id']}: recorded inputs differ from their source tables"
            f" (rerun damage_assessments for {row['day']}): {'; '.join(str(d) for d in differences[:10])}"
        )


def _record(db: TimescaleDBResource, directory: ProofDirectory, keys: dict[str, str]) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE damage_assessments SET proof_cid = :cid, proof_uri = :uri, proof_key = :key"
                " WHERE assessment_id = :id AND proof_cid IS NULL"
            ),
            [
                {
                    "id": proof.assessment_id,
                    "cid": proof.cid,
                    "uri": directory.uri(proof),
                    "key": keys[proof.assessment_id],
                }
                for proof in directory.files
            ],
        )
