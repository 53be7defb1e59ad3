"""`microcrop verify-proof`: a real pin on the sandbox gateway, the S3 copy, a local file and altered copies;
a hostile gateway's forged file or folder block refused, and the CID the payout receiver records."""

import base64
import copy
import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from microcrop_assets.cli import main
from microcrop_assets.defs.payouts.ledger import settle_payouts
from microcrop_assets.defs.payouts.proving import prove_day
from microcrop_assets.proofs.cid import content_matches, parse_cid
from microcrop_assets.proofs.document import canonical_bytes
from microcrop_assets.science.damage import assess_one
from microcrop_assets_tests.conftest import object_store_env
from microcrop_assets_tests.fixtures.clients import pinata
from microcrop_assets_tests.fixtures.payouts import register
from microcrop_assets_tests.fixtures.proofs import DAY, assess_plots


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


@pytest.mark.integration
def test_a_pinned_proof_verifies_from_the_gateway_and_the_store(pinned, capsys):
    assert main(["verify-proof", pinned["proof_cid"]]) == 0
    out = capsys.readouterr().out
    assert "schema: valid" in out and "recomputed: match" in out and pinned["proof_cid"] in out
    assert main(["verify-proof", pinned["proof_uri"]]) == 0  # ipfs://<directory>/<file>
    assert main(["verify-proof", pinned["proof_cid"], "--from-store"]) == 0
    assert "recomputed: match" in capsys.readouterr().out


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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


# -- a hostile gateway: every reference form is checked against CIDs (security issue 14, finding 4) --------

VECTORS = Path(__file__).parent / "data" / "cid_vectors.txt"  # the official JS importer's, as in reference/
RAW_BLOCK = "application/vnd.ipld.raw"
FORGED_SUM_INSURED = 900_000_000_000_000  # micro-USDC: 900 million USDC


class HostileGateway:
    """An IPFS gateway of the test's own on loopback: answers the paths in `forged` (path with its query,
    e.g. /ipfs/CID?format=raw) with those bytes and passes every other request on to the sandbox's."""

    def __init__(self, upstream_root: str):
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                gateway.requests.append((self.path, self.headers.get("Accept")))
                if self.path in gateway.forged:
                    status, body = 200, gateway.forged[self.path]
                else:
                    upstream = httpx.get(
                        upstream_root + self.path, headers={"Accept": self.headers.get("Accept", "*/*")}
                    )
                    status, body = upstream.status_code, upstream.content
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self.forged: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ipfs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(sandbox):
    gateway = HostileGateway(sandbox.root_url)
    yield gateway
    gateway.close()


def raw_cid_binary(data: bytes) -> bytes:
    """CIDv1 raw of one block, encoded here without the code under test: 0x01 0x55, then sha2-256 multihash."""
    return bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()


def raw_cid(data: bytes) -> str:
    return "b" + base64.b32encode(raw_cid_binary(data)).decode().lower().rstrip("=")


def dag_pb_directory(files: dict[str, bytes]) -> bytes:
    """A UnixFS folder block of single-block files, its protobuf written here by hand: per file (by name) a
    link {Hash: raw CIDv1, Name, Tsize: length}, then Data = UnixFS {Type: Directory}."""

    def varint(value: int) -> bytes:
        out = b""
        while value >= 0x80:
            out, value = out + bytes([value & 0x7F | 0x80]), value >> 7
        return out + bytes([value])

    def field(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    links = b""
    for name, data in sorted(files.items()):
        link = field(1, raw_cid_binary(data)) + field(2, name.encode()) + varint(3 << 3) + varint(len(data))
        links += field(2, link)
    return links + field(1, b"\x08\x01")


def forged_proof(pinned_bytes: bytes) -> bytes:
    """The pinned proof with the sum insured and cap raised to 900 million USDC and its outputs recomputed to
    fit: valid and self-consistent, so only a CID check can tell it is not the pinned proof."""
    forged = json.loads(pinned_bytes)
    forged["inputs"]["sum_insured_micro_usdc"] = FORGED_SUM_INSURED
    forged["inputs"]["max_payout_micro_usdc"] = FORGED_SUM_INSURED
    forged["outputs"] = json.loads(canonical_bytes(assess_one(forged["inputs"])))
    return canonical_bytes(forged)


@pytest.fixture
def references(pinned, s3_store, tmp_path) -> dict:
    """The pinned proof's references, its bytes, and a forged proof that verifies on its own."""
    directory_cid, _, name = pinned["proof_uri"].removeprefix("ipfs://").partition("/")
    real = s3_store.get_bytes(pinned["proof_key"])
    forged = forged_proof(real)
    forged_file = tmp_path / "forged.json"
    forged_file.write_bytes(forged)
    return {
        "directory": directory_cid,
        "name": name,
        "file": pinned["proof_cid"],
        "uri": pinned["proof_uri"],
        "real": real,
        "forged": forged,
        "forged_file": str(forged_file),
    }


@pytest.mark.unit
def test_cid_checks_agree_with_the_reference_vectors():
    """The oracle is the official JS importer's vectors (cid_vectors.txt), not this code: each CID names its
    input (CIDv0 and CIDv1, both profiles, one block or a tree) and not the input with one more byte."""
    checked = 0
    for line in VECTORS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, length, cid, _ = line.split("\t")
        if pattern := re.fullmatch(r"pattern_(\d+)MiB\(i%(\d+)\)", name):
            size, modulus = int(pattern[1]) * 1_048_576, int(pattern[2])
            data = (bytes(range(modulus)) * (size // modulus + 1))[:size]
        elif zeros := re.fullmatch(r"zeros_(\d+)", name):
            data = bytes(int(zeros[1]))
        else:
            data = b"" if name == "empty" else name.replace("\\n", "\n").encode()
        assert len(data) == int(length)
        assert content_matches(cid, data), (name, cid)
        assert not content_matches(cid, data + b"x"), (name, cid)
        assert parse_cid(cid).version == (0 if cid.startswith("Qm") else 1)
        checked += 1
    assert checked == 24
    assert raw_cid(b"hello world\n") == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"  # the helper too


@pytest.mark.integration
def test_the_forgery_alone_would_pass_as_a_match(references, pinned, capsys):
    """Without a CID the forged proof verifies: schema valid, canonical, outputs recomputed to its payout."""
    assert main(["verify-proof", references["forged_file"]]) == 0
    out = capsys.readouterr().out
    assert "recomputed: match" in out and "cid: match" not in out  # a local file has no CID to check
    payout = int(re.search(r"payout (\d+) micro-USDC", out)[1])
    assert payout > 1000 * pinned["payout_micro_usdc"] > 0  # the forgery pays vastly more than the pinned proof


@pytest.mark.integration
def test_the_honest_path_checks_the_folder_block_and_the_file(references, hostile, capsys):
    assert main(["verify-proof", references["uri"], "--gateway", hostile.url]) == 0
    out = capsys.readouterr().out
    assert "cid: match" in out and "recomputed: match" in out and references["file"] in out
    # the folder's raw block was asked for in the trustless gateway form, then the file by its own CID
    assert (f"/ipfs/{references['directory']}?format=raw", RAW_BLOCK) in hostile.requests
    assert any(path == f"/ipfs/{references['file']}" for path, _ in hostile.requests)
    # independent oracle: the sandbox's block hashes to the directory CID and lists the file's raw CID
    block = httpx.get(f"{hostile.url}/{references['directory']}", params={"format": "raw"}).content
    assert block == dag_pb_directory({references["name"]: references["real"]})
    assert hashlib.sha256(block).digest() == directory_cid_digest(references["directory"])
    assert raw_cid(references["real"]) == references["file"]


def directory_cid_digest(cid: str) -> bytes:
    """The sha256 digest in a base32 CIDv1 dag-pb, read without the code under test."""
    body = cid[1:].upper()
    binary = base64.b32decode(body + "=" * (-len(body) % 8))
    assert binary[:4] == bytes([0x01, 0x70, 0x12, 0x20]), binary[:4]
    return binary[4:]


def refusal(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err and "recomputed: match" not in captured.out
    return err


@pytest.mark.integration
def test_a_forged_file_under_the_real_folder_is_refused(references, hostile, capsys):
    """The gateway serves the real folder block but forged bytes for the file: every form is refused."""
    hostile.forged[f"/ipfs/{references['file']}"] = references["forged"]
    hostile.forged[f"/ipfs/{references['directory']}/{references['name']}"] = references["forged"]
    forged_cid = raw_cid(references["forged"])
    for reference in (references["uri"], references["file"]):
        assert main(["verify-proof", reference, "--gateway", hostile.url]) == 1
        err = refusal(capsys)
        assert err.startswith(f"microcrop verify-proof {reference}: ")
        assert f"for {references['file']} are another file (its CID is {forged_cid})" in err
    # and a forged proof cannot stand in as the pinned original of --against
    assert (
        main(["verify-proof", references["forged_file"], "--against", references["uri"], "--gateway", hostile.url]) == 1
    )
    assert f"--against {references['uri']}: " in refusal(capsys)


@pytest.mark.integration
def test_a_forged_folder_block_is_refused(references, hostile, capsys):
    """The gateway forges the folder's block to list the forged file under the same name, and serves that
    file under its own (true) CID: the block does not hash to the folder's CID."""
    forged_cid = raw_cid(references["forged"])
    block = dag_pb_directory({references["name"]: references["forged"]})
    hostile.forged[f"/ipfs/{references['directory']}?format=raw"] = block
    hostile.forged[f"/ipfs/{forged_cid}"] = references["forged"]
    assert main(["verify-proof", references["uri"], "--gateway", hostile.url]) == 1
    err = refusal(capsys)
    assert err.startswith(f"microcrop verify-proof {references['uri']}: ")
    assert f"another block for folder {references['directory']}" in err
    assert not any(path == f"/ipfs/{forged_cid}" for path, _ in hostile.requests)  # refused before the file
    # a gateway that ignores ?format=raw and answers with its folder listing is refused the same way
    hostile.forged[f"/ipfs/{references['directory']}?format=raw"] = f"{references['name']}\n".encode()
    assert main(["verify-proof", references["uri"], "--gateway", hostile.url]) == 1
    assert f"another block for folder {references['directory']}" in refusal(capsys)


@pytest.mark.integration
def test_chain_records_the_proof_cid_match_and_mismatch(
    references, pinned, clean_assessments, chain, monkeypatch, capsys
):
    """--chain: the receiver's `proofCids(assessment)` must name this proof; an auditor needs no key."""
    register(clean_assessments, chain)
    assert len(settle_payouts(clean_assessments, chain).confirmed) == 1
    monkeypatch.setenv("BASE_RPC_URL", chain.rpc_url)
    monkeypatch.setenv("BASE_CHAIN_ID", str(chain.chain_id))
    monkeypatch.setenv("PAYOUT_RECEIVER_ADDRESS", chain.receiver_address)
    monkeypatch.delenv("ORACLE_PRIVATE_KEY", raising=False)
    assert main(["verify-proof", references["uri"], "--chain"]) == 0
    out = capsys.readouterr().out
    assert f"chain: match (receiver {chain.receiver_address} records proof {references['file']}" in out
    # the forged copy carries the same assessment id, but the chain names the pinned proof
    assert main(["verify-proof", references["forged_file"], "--chain"]) == 1
    err = refusal(capsys)
    assert "chain MISMATCH" in err and references["file"] in err and raw_cid(references["forged"]) in err
    assert pinned["assessment_id"] in err
