"""`microcrop verify-proof`: a real pin on the sandbox gateway, the S3 copy, a local file and altered copies."""

import json

import pytest
import sqlalchemy as sa

from microcrop_assets.cli import main
from microcrop_assets.payouts.proving import prove_day
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
