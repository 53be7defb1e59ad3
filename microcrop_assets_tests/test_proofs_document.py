"""Proof documents: canonical bytes, recomputation from the recorded inputs, the JSON Schema."""

import base64
import copy
import hashlib
import json
import math
import re

import pytest

from microcrop_assets.proofs.cid import file_cid
from microcrop_assets.proofs.document import (
    ProofError,
    build_proof,
    proof_schema,
    recompute,
    recompute_outputs,
    validate,
    weather_chain,
    weather_differences,
)
from microcrop_assets.science.damage import assess_one
from microcrop_assets.science.policy import resolve_terms
from microcrop_assets_tests.fixtures.proofs import chain_document, inputs_document

pytestmark = pytest.mark.unit


def proof_of(document: dict) -> tuple[dict, bytes]:
    return build_proof(document, assess_one(document), chain_document())


def test_same_inputs_give_identical_bytes_and_cid():
    first, data = proof_of(inputs_document("plot-1", "0.25"))
    # the same content built with keys inserted in reverse order
    shuffled = json.loads(json.dumps(inputs_document("plot-1", "0.25")), object_pairs_hook=lambda p: dict(reversed(p)))
    second, again = proof_of(shuffled)
    assert data == again
    assert file_cid(data) == file_cid(again)
    # canonical form: compact, sorted, UTF-8, and the CID of a small file is its raw sha256 (CIDv1, raw leaf)
    parsed = json.loads(data)
    assert data == json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert list(parsed) == sorted(parsed) and b"\n" not in data
    raw = b"\x01\x55\x12\x20" + hashlib.sha256(data).digest()
    assert file_cid(data) == "b" + base64.b32encode(raw).decode().lower().rstrip("=")
    # another input, another document
    _, other = proof_of(inputs_document("plot-1", "0.26"))
    assert other != data


def test_proof_carries_what_section_7_asks_for():
    document, _ = proof_of(inputs_document("plot-1", "0.25"))
    inputs, outputs, chain = document["inputs"], document["outputs"], document["weather_chain"]
    # each layer: its definition (trigger, exit), its index value and its fraction
    assert chain["layers"]["drought_rain"] == {
        "peril": "drought", "index": "worst_14d_rain_mm", "trigger": "30", "exit": "5"
    }  # fmt: skip
    assert inputs["weather"]["indices"]["worst_14d_rain_mm"] == "23.75"  # (30 - 23.75) / (30 - 5) = 0.25
    assert inputs["weather"]["layers"]["drought_rain"] == "0.25"
    assert chain["peril_weights"] == {"drought": "1", "flood": "1", "heat": "1"}
    # the plot weather day's stations and their weights
    assert chain["stations"] == ["st-a", "st-b"] and chain["station_weights"] == ["0.625", "0.375"]
    assert inputs["ndvi"]["sources"][0]["ndvi_key"] == "ndvi/plot-1.tif"
    assert inputs["baseline"]["content_hash"]
    assert inputs["terms"]["deductible"] == "0.10" and inputs["sum_insured_micro_usdc"] == 250_000_000
    assert outputs["weights"] == {"weather": "0.600000000000", "satellite": "0.400000000000"}
    assert outputs["stage_multiplier"] == "1.500000000000" and outputs["growth_stage"] == "flowering"
    assert document["method_version"] == "damage-2" and len(document["code"]["damage_module_sha256"]) == 64
    assert document["formula"]["steps"]


def test_payout_in_the_proof_follows_the_policy_by_hand():
    """Independent arithmetic: weather 0.25, NDVI 0.42 against baseline 0.61 (decline layer 0 -> 0.4)."""
    document, _ = proof_of(inputs_document("plot-1", "0.25"))
    from decimal import ROUND_HALF_UP, Decimal

    decline = (Decimal("0.61") - Decimal("0.42")) / Decimal("0.61")
    satellite = min(max(decline / Decimal("0.4"), Decimal(0)), Decimal(1))
    damage = min((Decimal("0.6") * Decimal("0.25") + Decimal("0.4") * satellite) * Decimal("1.5"), Decimal(1))
    payout = min((Decimal(250_000_000) * (damage - Decimal("0.1"))), Decimal(200_000_000))
    outputs = document["outputs"]
    assert abs(Decimal(outputs["damage"]) - damage) < Decimal("1e-11")
    assert outputs["damage_bps"] == int((damage * 10_000).quantize(Decimal(1), ROUND_HALF_UP))
    assert abs(outputs["payout_micro_usdc"] - payout) <= 1
    assert outputs["triggered"] is True


def test_recompute_matches_and_names_an_altered_field():
    document, _ = proof_of(inputs_document("plot-1", "0.25"))
    assert recompute(document) == []
    altered = copy.deepcopy(document)
    altered["inputs"]["weather"]["weather_stress"] = "0.35"
    fields = {difference.field for difference in recompute(altered)}
    assert {"outputs.weather_damage", "outputs.damage", "outputs.payout_micro_usdc"} <= fields
    lied = copy.deepcopy(document)
    lied["outputs"]["payout_micro_usdc"] += 1
    assert [d.field for d in recompute(lied)] == ["outputs.payout_micro_usdc"]


def test_stored_outputs_that_do_not_recompute_are_refused():
    document = inputs_document("plot-1", "0.25")
    stored = assess_one(document)
    stored["damage"] = "0.9"
    with pytest.raises(ProofError, match="damage"):
        build_proof(document, stored, chain_document())
    # numbers compare by value, as the table's numeric(20,12) gives them back
    stored = assess_one(document)
    stored["confidence"] = stored["confidence"] + "00000000"
    build_proof(document, stored, chain_document())


def test_schema_refuses_a_proof_missing_the_raster_hash():
    document, _ = proof_of(inputs_document("plot-1", "0.25"))
    validate(document)
    broken = copy.deepcopy(document)
    del broken["inputs"]["ndvi"]["sources"][0]["ndvi_sha256"]
    with pytest.raises(ProofError, match="inputs/ndvi"):
        validate(broken)
    for field, drop in (
        ("weather_chain", lambda d: d["weather_chain"].pop("station_weights")),
        ("weather_chain/layers/flood_daily", lambda d: d["weather_chain"]["layers"]["flood_daily"].pop("exit")),
        ("inputs/weather", lambda d: d["inputs"]["weather"].pop("indices")),
        ("(document)", lambda d: d.pop("weather_chain")),
    ):
        broken = copy.deepcopy(document)
        drop(broken)
        with pytest.raises(ProofError, match=f"proof field {re.escape(field)}:"):
            validate(broken)
    # build_proof validates what it builds: a chain only the schema faults (a station without a weight)
    inputs = inputs_document("plot-1", "0.25")
    chain = chain_document()
    chain["station_weights"][1] = None
    with pytest.raises(ProofError, match=r"^assessment \S+: proof field weather_chain/station_weights/1: None is not"):
        build_proof(inputs, assess_one(inputs), chain)
    unknown = copy.deepcopy(document)
    unknown["method_version"] = "damage-0"
    with pytest.raises(ProofError, match="no proof schema for method 'damage-0'"):
        validate(unknown)
    assert proof_schema("damage-2")["$id"].endswith("damage-2")


def test_inputs_that_cannot_be_proven_name_the_assessment():
    document = inputs_document("plot-1", "0.25")
    stored = assess_one(document)
    document["sowing_date"] = "2025-06-21"  # after the assessed day: the method refuses it
    with pytest.raises(ProofError, match=f"assessment {stored['assessment_id']}: inputs do not recompute"):
        build_proof(document, stored, chain_document())


def test_batch_recomputation_equals_one_by_one_and_isolates_a_bad_document():
    documents = [inputs_document(f"plot-{i}", stress, ndvi) for i, (stress, ndvi) in enumerate(
        [("0.25", "0.42"), ("0.5", None), ("0.05", "0.6"), ("0.3", "0.2")]
    )]  # fmt: skip
    assert recompute_outputs(documents) == [assess_one(document) for document in documents]
    documents[1]["sowing_date"] = "2025-06-21"  # after the assessed day
    outputs = recompute_outputs(documents)
    assert isinstance(outputs[1], ProofError) and "plot-1" in str(outputs[1])
    assert [outputs[i] for i in (0, 2, 3)] == [assess_one(documents[i]) for i in (0, 2, 3)]


def test_weather_inputs_and_layer_definitions_must_belong_together():
    document = inputs_document("plot-1", "0.25")
    stored = assess_one(document)
    chain = chain_document()
    del chain["layers"]["drought_rain"]  # its fraction is in inputs.weather.layers
    with pytest.raises(ProofError, match="inputs.weather.layers.drought_rain has no layer definition"):
        build_proof(document, stored, chain)
    with pytest.raises(ProofError, match=r"2 stations \['st-a', 'st-b'\] but 1 weights"):
        weather_chain(resolve_terms("maize", None), ["st-a", "st-b"], ["1"])
    # verify-proof's recomputation names a proof whose layer has no index value
    proof, _ = proof_of(document)
    del proof["inputs"]["weather"]["indices"]["cdd"]
    assert [(d.field, d.actual) for d in recompute(proof)] == [
        ("weather_chain", "layer drought_dry_spell: its index cdd has no value in inputs.weather.indices")
    ]
    # nor one without a fraction, nor a layer whose peril has no weight: the weather part cannot recompute
    proof, _ = proof_of(inputs_document("plot-1", "0.25"))
    del proof["inputs"]["weather"]["layers"]["heat_tmax"]
    del proof["weather_chain"]["peril_weights"]["flood"]
    assert [d.actual for d in recompute(proof)] == [
        "layer heat_tmax: no fraction in inputs.weather.layers",
        "layer flood_daily: its peril flood has no weight in weather_chain.peril_weights",
        "layer flood_3day: its peril flood has no weight in weather_chain.peril_weights",
    ]


def test_the_weather_part_recomputes_from_its_indices_and_chain():
    """Layer fractions compare at the 6 places weather_indices keeps; peril and weather stresses exactly."""
    document, _ = proof_of(inputs_document("plot-1", "0.25"))
    inputs, chain = document["inputs"], document["weather_chain"]
    assert weather_differences(inputs, chain) == [] and recompute(document) == []

    def fields(change) -> list[str]:
        altered = copy.deepcopy(document)
        change(altered["inputs"]["weather"])
        return [str(d) for d in weather_differences(altered["inputs"], chain)]

    assert fields(lambda w: w["layers"].update(drought_rain="0.250000")) == []  # the same number
    assert fields(lambda w: w["layers"].update(drought_rain="0.2500004")) == [
        'inputs.weather.layers.drought_rain: proof says "0.2500004", recomputed 0.25'
    ]
    assert fields(lambda w: w["layers"].update(heat_tmax=None)) == [
        "inputs.weather.layers.heat_tmax: proof says null, recomputed 0.0"
    ]
    # stresses are stored unrounded: one unit in the last place is a difference
    assert fields(lambda w: w.update(weather_stress=repr(math.nextafter(0.25, 1)))) == [
        'inputs.weather.weather_stress: proof says "0.25000000000000006", recomputed 0.25'
    ]
    # a peril's stress is its worst layer, from the unrounded fractions
    assert fields(lambda w: w.update(drought_stress="0.2")) == [
        'inputs.weather.drought_stress: proof says "0.2", recomputed 0.25'
    ]
    # the index moves the layer, the peril and the weather stress: each is named
    assert fields(lambda w: w["indices"].update(worst_14d_rain_mm="20.0")) == [
        'inputs.weather.layers.drought_rain: proof says "0.25", recomputed 0.4',
        'inputs.weather.drought_stress: proof says "0.25", recomputed 0.4',
        'inputs.weather.weather_stress: proof says "0.25", recomputed 0.4',
    ]


def test_a_missing_index_leaves_the_stresses_missing_as_the_pipeline_does():
    document, _ = proof_of(inputs_document("plot-1", None))  # worst_14d_rain_mm missing: satellite only
    weather = document["inputs"]["weather"]
    assert weather["indices"]["worst_14d_rain_mm"] is None and weather["layers"]["drought_rain"] is None
    assert weather["drought_stress"] is None and weather["weather_stress"] is None
    assert weather["flood_stress"] == "0.0" and document["outputs"]["sources"] == ["satellite"]
    assert recompute(document) == []
    claimed = copy.deepcopy(document)
    claimed["inputs"]["weather"]["drought_stress"] = "0.0"  # a missing layer is not a zero
    assert [str(d) for d in recompute(claimed)] == ['inputs.weather.drought_stress: proof says "0.0", recomputed null']


def test_a_proof_whose_weather_does_not_follow_from_its_indices_is_refused():
    document = inputs_document("plot-1", "0.25")
    stored = assess_one(document)
    document["weather"]["layers"]["drought_rain"] = "0.3"  # the damage does not read it: only this check can
    with pytest.raises(ProofError, match=r'inputs.weather.layers.drought_rain: proof says "0.3", recomputed 0.25$'):
        build_proof(document, stored, chain_document())
    chain = chain_document()
    chain["peril_weights"]["drought"] = "2"
    with pytest.raises(ProofError, match=r'inputs.weather.weather_stress: proof says "0.25", recomputed 0.5$'):
        build_proof(inputs_document("plot-1", "0.25"), stored, chain)
    # an imagery-only assessment has no weather part to check
    imagery_only = inputs_document("plot-1", "0.25")
    imagery_only["weather"] = None
    proof, _ = build_proof(imagery_only, assess_one(imagery_only), chain_document())
    assert weather_differences(proof["inputs"], proof["weather_chain"]) == [] and recompute(proof) == []
