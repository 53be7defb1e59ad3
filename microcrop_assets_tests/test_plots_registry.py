import copy
import json
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.cli import main as cli
from microcrop_assets.defs.plots.assets import DEMO_PLOTS, plots, read_source
from microcrop_assets.defs.plots.registry import PlotsFileError, parse_plots, store_plots
from microcrop_assets.resources.object_store import ChecksumMismatch

SQUARE = [[34.70, 0.20], [34.7015, 0.20], [34.7015, 0.2012], [34.70, 0.2012], [34.70, 0.20]]


def feature(**overrides):
    properties = {
        "plot_id": "P-1",
        "policy_id": "POL-1",
        "farmer_address": "0x" + "ab" * 20,
        "crop": "maize",
        "sowing_date": "2025-03-15",
        "season_end": "2025-09-30",
        "sum_insured_usdc": "1000",
    }
    geometry = overrides.pop("geometry", {"type": "Polygon", "coordinates": [SQUARE]})
    properties.update(overrides)
    properties = {k: v for k, v in properties.items() if v is not ...}
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def collection(*features) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def snapshot(db):
    return db.read_frame("SELECT plot_id, content_sha256, active, updated_at FROM plots ORDER BY plot_id")


@pytest.mark.unit
def test_minimal_feature_gets_every_default():
    frame = parse_plots(collection(feature()), "mem")
    row = frame.iloc[0]
    assert row["sum_insured_micro_usdc"] == 1_000_000_000 == row["max_payout_micro_usdc"]
    terms = row["policy_terms"]
    assert terms["deductible"] == "0.10" and terms["weights"] == {"weather": "0.6", "satellite": "0.4"}
    assert terms["trigger_threshold"] == "0.3" and terms["crop_calendar"]["flowering"] == 60
    assert terms["layers"]["flood_daily"] == {"peril": "flood", "index": "rx1day_mm", "trigger": "150", "exit": "300"}
    # ~167 m x ~133 m at the equator
    assert Decimal("2.1") < row["area_ha"] < Decimal("2.3")
    assert row["centroid_lat"] == pytest.approx(0.2006, abs=1e-6)


@pytest.mark.unit
def test_numbers_as_json_numbers_or_strings_are_the_same_plot():
    as_numbers = parse_plots(collection(feature(sum_insured_usdc=1000.5, policy_terms={"deductible": 0.15})), "a")
    as_strings = parse_plots(collection(feature(sum_insured_usdc="1000.50", policy_terms={"deductible": "0.15"})), "b")
    assert as_numbers.iloc[0]["sum_insured_micro_usdc"] == 1_000_500_000
    assert as_numbers.iloc[0]["content_sha256"] == as_strings.iloc[0]["content_sha256"]


@pytest.mark.unit
def test_franchise_replaces_default_deductible():
    terms = parse_plots(collection(feature(policy_terms={"franchise": "0.2"})), "m").iloc[0]["policy_terms"]
    assert terms["franchise"] == "0.2" and terms["deductible"] is None


BAD = [
    (
        "out of range",
        feature(geometry={"type": "Polygon", "coordinates": [[[200, 0], [201, 0], [201, 1], [200, 0]]]}),
        "geometry.coordinates",
        "out of range",
    ),
    (
        "unclosed",
        feature(geometry={"type": "Polygon", "coordinates": [SQUARE[:-1] + [[34.70, 0.2001]]]}),
        "geometry.coordinates",
        "not closed",
    ),
    (
        "self-intersecting",
        feature(
            geometry={
                "type": "Polygon",
                "coordinates": [[[34.70, 0.20], [34.71, 0.21], [34.71, 0.20], [34.70, 0.21], [34.70, 0.20]]],
            }
        ),
        "geometry",
        "Self-intersection",
    ),
    (
        "zero area",
        feature(
            geometry={"type": "Polygon", "coordinates": [[[34.70, 0.20], [34.71, 0.20], [34.72, 0.20], [34.70, 0.20]]]}
        ),
        "geometry",
        "invalid polygon",
    ),
    ("unknown crop", feature(crop="banana"), "crop", "unknown crop"),
    ("malformed address", feature(farmer_address="0x1234"), "farmer_address", "not an EVM address"),
    ("bad checksum", feature(farmer_address="0x" + "aB" * 20), "farmer_address", "EIP-55"),
    ("non-positive sum", feature(sum_insured_usdc="0"), "sum_insured_usdc", "must be positive"),
    ("too precise", feature(sum_insured_usdc="1.0000001"), "sum_insured_usdc", "6 decimal places"),
    ("inconsistent sums", feature(max_payout_usdc="2000"), "max_payout_usdc", "exceeds sum_insured_usdc"),
    ("sowing after end", feature(sowing_date="2025-10-01"), "sowing_date", "not before season_end"),
    ("bad date", feature(season_end="30/09/2025"), "season_end", "YYYY-MM-DD"),
    ("unknown term", feature(policy_terms={"deductable": "0.1"}), "policy_terms.deductable", "unknown policy term"),
    ("term out of range", feature(policy_terms={"deductible": "1.5"}), "policy_terms.deductible", "between 0 and 1"),
    ("unknown field", feature(colour="green"), "colour", "unknown field"),
    ("missing field", feature(policy_id=...), "policy_id", "is required"),
]


@pytest.mark.integration
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_each_bad_plot_class_is_named_and_changes_nothing(case, clean_plots):
    _, bad, field, reason = case
    store_plots(clean_plots, parse_plots(collection(feature(plot_id="GOOD-1")), "seed"), "seed")
    before = snapshot(clean_plots)
    text = collection(feature(plot_id="GOOD-2"), bad)
    with pytest.raises(PlotsFileError) as caught:
        store_plots(clean_plots, parse_plots(text, "upload.geojson"), "upload.geojson")
    problem = caught.value.problems[0]
    assert len(caught.value.problems) >= 1 and problem.index == 1 and problem.field == field
    assert reason in problem.reason
    assert "upload.geojson" in str(caught.value) and "feature 1" in str(caught.value)
    assert snapshot(clean_plots).equals(before)


@pytest.mark.unit
def test_every_invalid_feature_is_reported_at_once():
    text = collection(
        feature(plot_id="A", crop="banana"),
        feature(plot_id="B"),
        feature(plot_id="C", sum_insured_usdc=-1),
        feature(plot_id="B"),
    )
    with pytest.raises(PlotsFileError) as caught:
        parse_plots(text, "many.geojson")
    found = [(p.index, p.plot_id, p.field) for p in caught.value.problems]
    assert found == [(0, "A", "crop"), (2, "C", "sum_insured_usdc"), (3, "B", "plot_id")]
    assert "duplicate of feature 1" in str(caught.value)


@pytest.mark.unit
def test_not_a_feature_collection():
    with pytest.raises(PlotsFileError, match="not valid JSON"):
        parse_plots("{nope", "broken.geojson")
    with pytest.raises(PlotsFileError, match="FeatureCollection"):
        parse_plots(json.dumps({"type": "Feature"}), "x")


@pytest.mark.integration
def test_reimport_is_a_noop_and_missing_plots_become_inactive(clean_plots):
    text = DEMO_PLOTS.read_text()
    first = store_plots(clean_plots, parse_plots(text, "demo"), "demo")
    assert (first.inserted, first.updated, first.active) == (12, 0, 12)
    before = snapshot(clean_plots)
    again = store_plots(clean_plots, parse_plots(text, "demo"), "demo")
    assert (again.inserted, again.updated, again.unchanged, again.deactivated) == (0, 0, 12, 0)
    assert snapshot(clean_plots).equals(before)

    document = json.loads(text)
    kept = copy.deepcopy(document)
    kept["features"] = document["features"][:10]
    kept["features"][0]["properties"]["sum_insured_usdc"] = "999"
    third = store_plots(clean_plots, parse_plots(json.dumps(kept), "v2"), "v2")
    assert (third.inserted, third.updated, third.unchanged, third.deactivated, third.active) == (0, 1, 9, 2, 10)
    rows = clean_plots.read_frame("SELECT plot_id, active, deactivated_at FROM plots ORDER BY plot_id")
    assert len(rows) == 12  # never deleted: policies are audit records
    assert rows.loc[~rows["active"], "deactivated_at"].notna().all()


@pytest.mark.integration
def test_plots_asset_materializes_from_object_store(clean_plots, s3_store):
    s3_store.put("registry/plots.geojson", DEMO_PLOTS.read_bytes())
    result = dg.materialize(
        [plots],
        resources={"timescaledb": clean_plots, "object_store": s3_store},
        run_config={"ops": {"plots": {"config": {"source": f"s3://{s3_store.bucket}/registry/plots.geojson"}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("plots")[0].metadata
    assert metadata["inserted"].value == 12 and metadata["active_plots"].value == 12
    check = result.get_asset_check_evaluations()[0]
    assert check.passed
    with clean_plots.begin() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM plots WHERE active")) == 12


@pytest.mark.integration
def test_an_operator_upload_without_sha256_is_read_but_a_tampered_one_is_not(s3_store):
    # uploaded with any S3 tool: no sha256 metadata, accepted (each plot's content is hashed on import)
    s3_store._s3.put_object(Bucket=s3_store.bucket, Key="registry/console.geojson", Body=DEMO_PLOTS.read_bytes())
    assert read_source(f"s3://{s3_store.bucket}/registry/console.geojson", s3_store) == DEMO_PLOTS.read_bytes()
    # written through the store, then altered behind its back: refused
    s3_store.put("registry/plots.geojson", DEMO_PLOTS.read_bytes())
    recorded = s3_store.head("registry/plots.geojson").sha256
    s3_store._s3.put_object(
        Bucket=s3_store.bucket, Key="registry/plots.geojson", Body=b"{}", Metadata={"sha256": recorded}
    )
    with pytest.raises(ChecksumMismatch, match="registry/plots.geojson"):
        read_source(f"s3://{s3_store.bucket}/registry/plots.geojson", s3_store)


@pytest.mark.integration
def test_plots_import_command(clean_plots, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", clean_plots.url)
    assert cli(["plots", "import", str(DEMO_PLOTS)]) == 0
    assert "12 inserted" in capsys.readouterr().out
    bad = tmp_path / "bad.geojson"
    bad.write_text(collection(feature(crop="banana")))
    assert cli(["plots", "import", str(bad)]) == 1  # an expected failure: one message, exit 1
    assert "crop='banana': unknown crop" in capsys.readouterr().err
    assert cli(["plots", "import", str(DEMO_PLOTS)]) == 0
    assert "0 inserted, 0 updated, 12 unchanged" in capsys.readouterr().out


def table_bytes(db) -> list[str]:
    """Every column of every plot row as PostgreSQL prints it: equal means byte-identical."""
    return db.read_frame("SELECT p::text AS row FROM plots p ORDER BY plot_id")["row"].tolist()


@pytest.mark.integration
def test_a_write_failing_inside_the_transaction_changes_nothing(clean_plots):
    """Parsing accepts the file; the database refuses its last row (a CHECK constraint) after the
    rows before it were written: the store's own transaction must leave the table as it was."""
    store_plots(clean_plots, parse_plots(DEMO_PLOTS.read_text(), "demo"), "demo")
    before = table_bytes(clean_plots)
    document = json.loads(DEMO_PLOTS.read_text())
    document["features"] = document["features"][:10]  # two plots would become inactive
    for item in document["features"][:9]:
        item["properties"]["sum_insured_usdc"] = "777"  # nine plots would be updated
    document["features"].append(feature(plot_id="ZZ-NEW"))  # and one inserted
    upload = parse_plots(json.dumps(document), "upload.geojson")
    # the last row in key order breaks plots_max_payout_within_sum_insured, which only the database checks
    last = upload["plot_id"].idxmax()
    assert upload.loc[last, "plot_id"] == "ZZ-NEW"
    upload.loc[last, "max_payout_micro_usdc"] = upload.loc[last, "sum_insured_micro_usdc"] + 1
    with pytest.raises(sa.exc.IntegrityError, match="plots_max_payout_within_sum_insured"):
        store_plots(clean_plots, upload, "upload.geojson")
    assert table_bytes(clean_plots) == before
