"""A day's proofs pinned to the Pinata sandbox over HTTP: one directory pin whose CID we computed,
each proof's own CID, copies in S3 keyed by CID, nothing invalid ever uploaded, reruns change nothing."""

import json

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.defs.payouts.assets import payout_proofs
from microcrop_assets.defs.payouts.proving import prove_day
from microcrop_assets.proofs.cid import file_cid
from microcrop_assets.proofs.document import recompute
from microcrop_assets.proofs.pinning import CidMismatch, ProofDirectory, pin_directory, proof_directories, proof_file
from microcrop_assets.resources.http import VendorNotFound
from microcrop_assets_tests.fixtures.clients import pinata
from microcrop_assets_tests.fixtures.proofs import DAY, assess_plots

pytestmark = pytest.mark.integration

PLOTS = [
    ("plot-a", 0.25, 0.42),
    ("plot-b", 0.5, None),  # no imagery: weather alone
    ("plot-c", 0.3, 0.5),
    ("plot-d", 0.0, 0.61),  # not triggered: no proof
]


def proof_columns(db) -> dict[str, tuple]:
    with db.begin() as conn:
        rows = conn.execute(sa.text("SELECT plot_id, proof_cid, proof_uri, proof_key FROM damage_assessments"))
        return {row.plot_id: (row.proof_cid, row.proof_uri, row.proof_key) for row in rows}


def pins(client) -> int:
    return client.list_pins(status="all").count


def test_a_day_is_one_directory_pin_with_local_cids(clean_assessments, sandbox, redis_resource, s3_store):
    db = clean_assessments
    assess_plots(db, PLOTS)
    client = pinata(sandbox, redis_resource)
    before = pins(client)
    summary = prove_day(db, client, s3_store, DAY)
    assert summary.proven == 3 and summary.pin_requests == 1 and not summary.refused
    assert pins(client) == before + 1
    [directory_cid] = summary.directories
    listed = client.list_pins(cid=directory_cid).rows[0]
    assert listed.name == f"microcrop-proofs-{DAY.isoformat()}"
    recorded = proof_columns(db)
    assert recorded["plot-d"] == (None, None, None)
    for plot in ("plot-a", "plot-b", "plot-c"):
        cid, uri, key = recorded[plot]
        assert uri.startswith(f"ipfs://{directory_cid}/") and uri.endswith(".json")
        by_file = client.fetch(cid)
        assert by_file == client.fetch(directory_cid, uri.rsplit("/", 1)[1])
        assert file_cid(by_file) == cid  # our CID is the content's
        assert s3_store.get_bytes(key) == by_file and key == f"proofs/{cid}.json"
        assert recompute(json.loads(by_file)) == []
        # the weather chain joined from weather_indices and plots.policy_terms, numbers as stored
        chain = json.loads(by_file)["weather_chain"]
        assert chain["stations"] == ["S1", "S2"] and chain["station_weights"] == ["0.75", "0.25"]
        assert chain["layers"]["drought_rain"] == {
            "peril": "drought", "index": "worst_14d_rain_mm", "trigger": "30", "exit": "5"
        }  # fmt: skip

    # again: nothing to send, nothing changes
    again = prove_day(db, client, s3_store, DAY)
    assert again.pin_requests == 0 and again.already_recorded == 3
    assert proof_columns(db) == recorded and pins(client) == before + 1
    # forgotten records: pinned again as a duplicate, the same CIDs come back
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE damage_assessments SET proof_cid = NULL, proof_uri = NULL, proof_key = NULL"))
    repinned = prove_day(db, client, s3_store, DAY)
    assert repinned.pin_requests == 1 and repinned.directories == [directory_cid]
    assert proof_columns(db) == recorded and pins(client) == before + 1
    # a plot triggered later that day: its own directory; the proofs already anchored keep theirs
    assess_plots(db, [("plot-e", 0.4, 0.5)])
    later = prove_day(db, client, s3_store, DAY)
    assert later.proven == 1 and later.already_recorded == 3 and later.directories != [directory_cid]
    proven = ("plot-a", "plot-b", "plot-c")
    assert {plot: proof_columns(db)[plot] for plot in proven} == {plot: recorded[plot] for plot in proven}
    assert proof_columns(db)["plot-e"][1].startswith(f"ipfs://{later.directories[0]}/")


def test_an_invalid_proof_never_reaches_pinata(clean_assessments, sandbox, redis_resource, s3_store):
    db = clean_assessments
    rows = {row["plot_id"]: row for row in assess_plots(db, PLOTS)}
    with db.begin() as conn:
        # stored outputs that the inputs do not give
        conn.execute(
            sa.text("UPDATE damage_assessments SET payout_micro_usdc = payout_micro_usdc - 1 WHERE plot_id = 'plot-a'")
        )
        # a station without a weight in the weather day: the proof's weather chain breaks the schema (a
        # decimal string), while its inputs still recompute and match their tables (weights are not inputs)
        conn.execute(sa.text("UPDATE weather_indices SET weights = '[0.75, null]' WHERE plot_id = 'plot-c'"))
    client = pinata(sandbox, redis_resource)
    before = pins(client)
    summary = prove_day(db, client, s3_store, DAY)
    assert set(summary.refused) == {rows["plot-a"]["assessment_id"], rows["plot-c"]["assessment_id"]}
    assert "payout_micro_usdc" in summary.refused[rows["plot-a"]["assessment_id"]]
    assert summary.refused[rows["plot-c"]["assessment_id"]] == (
        f"assessment {rows['plot-c']['assessment_id']}: proof field weather_chain/station_weights/1:"
        " None is not of type 'string'"
    )
    assert summary.proven == 1 and pins(client) == before + 1
    [directory_cid] = summary.directories
    listing = client.fetch(directory_cid).decode().split()
    assert listing == [f"{rows['plot-b']['assessment_id']}.json"]  # only the valid proof was uploaded
    recorded = proof_columns(db)
    assert recorded["plot-a"] == (None, None, None) and recorded["plot-c"] == (None, None, None)
    assert s3_store.list("proofs/") == [recorded["plot-b"][2]]
    # the asset pins the valid one and fails the run naming the refused ones
    with pytest.raises(dg.Failure, match="2 proof"):
        dg.materialize(
            [payout_proofs],
            partition_key=DAY.isoformat(),
            resources={"timescaledb": db, "pinata": client, "object_store": s3_store},
        )
    assert pins(client) == before + 1


def test_inputs_that_no_longer_match_their_tables_are_refused(clean_assessments, sandbox, redis_resource, s3_store):
    db = clean_assessments
    rows = {row["plot_id"]: row for row in assess_plots(db, PLOTS)}
    with db.begin() as conn:  # the weather index changed after the assessment was made
        conn.execute(sa.text("UPDATE weather_indices SET cdd = 10 WHERE plot_id = 'plot-a'"))
    client = pinata(sandbox, redis_resource)
    summary = prove_day(db, client, s3_store, DAY)
    assert list(summary.refused) == [rows["plot-a"]["assessment_id"]] and summary.proven == 2
    assert "inputs differ from their source tables" in summary.refused[rows["plot-a"]["assessment_id"]]
    assert 'weather.indices.cdd: tables say "10.0", recorded "5.0"' in summary.refused[rows["plot-a"]["assessment_id"]]


def test_weather_that_does_not_follow_from_the_policy_layers_is_refused(
    clean_assessments, sandbox, redis_resource, s3_store
):
    db = clean_assessments
    rows = {row["plot_id"]: row for row in assess_plots(db, PLOTS)}
    with db.begin() as conn:  # the policy's drought weight changed after its weather was computed
        conn.execute(
            sa.text(
                "UPDATE plots SET policy_terms = jsonb_set(policy_terms, '{peril_weights,drought}', '\"0.5\"')"
                " WHERE plot_id = 'plot-a'"
            )
        )
    summary = prove_day(db, pinata(sandbox, redis_resource), s3_store, DAY)
    assert list(summary.refused) == [rows["plot-a"]["assessment_id"]] and summary.proven == 2
    assert summary.refused[rows["plot-a"]["assessment_id"]].endswith(
        "inputs.weather does not follow from its indices and the weather chain:"
        ' inputs.weather.weather_stress: proof says "0.25", recomputed 0.125'
    )


def test_a_cid_pinata_disagrees_with_fails_naming_both(sandbox, redis_resource):
    client = pinata(sandbox, redis_resource)
    proof = proof_file("00000000-0000-5000-8000-000000000000", b'{"a":1}')
    [directory] = proof_directories(DAY, [proof])
    claimed = ProofDirectory(directory.folder, "bafybeiclaimedbutwrong", directory.files)
    with pytest.raises(CidMismatch) as caught:
        pin_directory(client, claimed)
    assert directory.cid in str(caught.value) and "bafybeiclaimedbutwrong" in str(caught.value)
    with pytest.raises(VendorNotFound):
        client.fetch("bafybeiclaimedbutwrong")
