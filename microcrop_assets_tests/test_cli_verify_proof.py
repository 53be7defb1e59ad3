"""`microcrop verify-proof`: a real pin on the sandbox gateway, the S3 copy, a local file and altered copies."""

import copy
import json

import pytest
import sqlalchemy as sa

from microcrop_assets.cli import main
from microcrop_assets.payouts.proving import prove_day
from microcrop_assets.proofs.document import canonical_bytes
from microcrop_assets_tests.conftest import object_store_env
from microcrop_assets_tests.fixtures_clients import pinata
from microcrop_assets_tests.fixtures_proofs import DAY, assess_plots, clean_assessments, damage_db_fixture

__all__ = ["clean_assessments", "damage_db_fixture"]


@pytest.fixture
def pinned(clean_assessments, sandbox, redis_resource, s3_store, monkeypatch) -> dict:
    """One proof pinned on the sandbox, the CLI's environment pointed at the sandbox and the S3 store."""
    [row] = assess_plots(clean_assessments, [("plot-v", 0.4, 0.45)])
    prove_day(clean_assessments, pinata(sandbox, redis_resource), s3_store, DAY)
    for name, value in {**sandbox.env, **object_store_env(s3_store)}.items():
        monkeypatch.setenv(name, value)
    with clean_assessments.begin() as conn:
        return dict(
            conn.execute(
                sa.text("SELECT * FROM damage_assessments WHERE assessment_id = :id"), {"id": row["assessment_id"]}
            )
            .mappings()
            .one()
        )


def test_a_pinned_proof_verifies_from_the_gateway_and_the_store(pinned, capsys):
    assert main(["verify-proof", pinned["proof_cid"]]) == 0
    out = capsys.readouterr().out
    assert "schema: valid" in out and "recomputed: match" in out and pinned["proof_cid"] in out
    assert main(["verify-proof", pinned["proof_uri"]]) == 0  # ipfs://<directory>/<file>
    assert main(["verify-proof", pinned["proof_cid"], "--from-store"]) == 0
    assert "recomputed: match" in capsys.readouterr().out


def test_an_altered_copy_names_the_field(pinned, capsys, tmp_path, sandbox, redis_resource):
    document = json.loads(pinata(sandbox, redis_resource).fetch(pinned["proof_cid"]))
    original = tmp_path / "proof.json"
    original.write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    assert main(["verify-proof", str(original)]) == 0
    capsys.readouterr()
    document["inputs"]["weather"]["weather_stress"] = "0.45"  # one input changed, outputs kept
    altered = tmp_path / "altered.json"
    altered.write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    assert main(["verify-proof", str(altered)]) == 1
    out = capsys.readouterr().out
    assert "outputs.weather_damage: proof says" in out and "outputs.damage:" in out
    # against the pinned original, the altered input itself is named
    assert main(["verify-proof", str(altered), "--against", pinned["proof_cid"]]) == 1
    out = capsys.readouterr().out
    assert "against " + pinned["proof_cid"] + ": 1 field(s) differ" in out
    assert 'inputs.weather.weather_stress: pinned "0.4", this copy "0.45"' in out


def test_expected_failures_are_one_line(pinned, capsys, tmp_path, s3_store):
    not_json = tmp_path / "proof.json"
    not_json.write_text("{not json")
    pretty = tmp_path / "pretty.json"
    cases = {
        str(not_json): "Expecting property name",
        "bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": "404",
        str(tmp_path / "missing.json"): "is not a CID",
    }
    for source, message in cases.items():
        assert main(["verify-proof", source]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err
    # the pinned proof pretty-printed: valid, but not the canonical bytes its CID names
    document = json.loads(s3_store.get_bytes(pinned["proof_key"]))
    pretty.write_text(json.dumps(document, indent=2))
    assert main(["verify-proof", str(pretty)]) == 2
    assert "not the canonical form" in capsys.readouterr().err
    pretty.write_text(json.dumps({"kind": "x"}))
    assert main(["verify-proof", str(pretty)]) == 2
    assert "method_version=None" in capsys.readouterr().err


def test_the_weather_part_is_recomputed_and_a_changed_number_named(pinned, capsys, tmp_path, s3_store):
    """The pinned proof's plot: worst 14-day rain 20 mm on the default drought_rain layer (trigger 30, exit 5)
    gives 0.4, its drought stress and its weather stress; every other layer 0."""
    document = json.loads(s3_store.get_bytes(pinned["proof_key"]))
    weather = document["inputs"]["weather"]
    assert weather["indices"]["worst_14d_rain_mm"] == "20.0" and weather["weather_stress"] == "0.4"

    def verify(*path_and_value) -> tuple[int, list[str]]:
        """verify-proof of a copy with one value changed (none given: untouched): exit code, differences."""
        altered = copy.deepcopy(document)
        if path_and_value:
            *path, key, value = path_and_value
            node = altered
            for part in path:
                node = node[part]
            node[key] = value
        copy_path = tmp_path / "copy.json"
        copy_path.write_bytes(canonical_bytes(altered))
        code = main(["verify-proof", str(copy_path)])
        return code, [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]

    assert verify() == (0, [])
    layer, drought, stress = (
        f'inputs.weather.{name}: proof says "0.4", recomputed'
        for name in ("layers.drought_rain", "drought_stress", "weather_stress")
    )
    assert verify("inputs", "weather", "indices", "worst_14d_rain_mm", "25.0") == (
        1,
        [f"{layer} 0.2", f"{drought} 0.2", f"{stress} 0.2"],
    )
    assert verify("weather_chain", "layers", "drought_rain", "trigger", "35") == (
        1,
        [f"{layer} 0.5", f"{drought} 0.5", f"{stress} 0.5"],
    )
    assert verify("weather_chain", "peril_weights", "drought", "0.5") == (1, [f"{stress} 0.2"])
    code, lines = verify("inputs", "weather", "weather_stress", "0.45")
    assert code == 1 and lines[0] == 'inputs.weather.weather_stress: proof says "0.45", recomputed 0.4'
    assert lines[1:] and all(line.startswith("outputs.") for line in lines[1:])  # and the damage it gave
