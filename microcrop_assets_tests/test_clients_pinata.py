"""PinataResource against the sandbox: pins whose CIDs match the local computation, v3 uploads, unpinning.

The sandbox computes the CID of what it pins with microcrop_assets.proofs.cid, the same code as the
"local computation" here: those equalities prove that the client sends the bytes and options it should
and reads the answer back, not that the CIDs are right. The CIDs themselves are checked against an
independent oracle, the official JS importer's vectors (data/cid_vectors.txt, test_proofs_cid.py),
and `test_pins_carry_the_js_importer_cids` below pins those vector inputs and compares with them.
"""

import io
import json

import pytest

from microcrop_assets.proofs.cid import directory_cid, file_cid
from microcrop_assets.resources.http import VendorAuthError, VendorNotFound
from microcrop_assets.resources.pinata import PinataResource, check_keyvalues, directory_folder
from microcrop_assets.sandbox.embedded import running_sandbox

from .fixtures.clients import pinata
from .test_proofs_cid import DIRECTORY_VECTORS, js_importer_cid, pattern_bytes

pytestmark = pytest.mark.integration

# larger than one 256 KiB chunk, so the CID is of a real UnixFS tree, not a single block
EVIDENCE = bytes(range(256)) * 2500 + b"tail"


@pytest.fixture(scope="module")
def sandbox():
    with running_sandbox() as running:
        yield running


@pytest.fixture
def client(sandbox, redis_resource) -> PinataResource:
    return pinata(sandbox, redis_resource)


class ForwardOnly(io.RawIOBase):
    """A stream that can only be read once, front to back (like an HTTP body)."""

    def __init__(self, data: bytes):
        self.inner = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self.inner.read(min(len(buffer), 10_000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_authentication_with_jwt_and_with_the_key_pair(sandbox, client, redis_resource):
    assert "Congratulations" in client.test_authentication()
    pair = pinata(
        sandbox,
        redis_resource,
        jwt=None,
        api_key=sandbox.credentials.pinata_api_key,
        api_secret=sandbox.credentials.pinata_secret_api_key,
    )
    assert "Congratulations" in pair.test_authentication()


def test_wrong_credentials_are_an_auth_error_with_pinatas_message(sandbox, redis_resource):
    with pytest.raises(VendorAuthError) as caught:
        pinata(sandbox, redis_resource, jwt="not-the-sandbox-jwt").test_authentication()
    assert caught.value.status == 401 and caught.value.message.startswith("UNAUTHORIZED: Invalid JWT")


def test_missing_credentials_are_refused_before_any_request(sandbox, redis_resource):
    with pytest.raises(ValueError, match="needs a JWT"):
        pinata(sandbox, redis_resource, jwt=None, api_key="only-the-key").test_authentication()


@pytest.mark.parametrize("cid_version", [0, 1])
def test_file_pin_cid_equals_the_local_computation(client, cid_version, tmp_path):
    expected = file_cid(EVIDENCE, cid_version=cid_version)
    assert expected.startswith("Qm" if cid_version == 0 else "bafy")
    pin = client.pin_file(f"evidence-v{cid_version}.bin", EVIDENCE, cid_version=cid_version, keyvalues={"v": 1})
    assert pin.cid == expected and pin.size > len(EVIDENCE) and pin.timestamp is not None
    # the same bytes from a path and from a forward-only stream: the same pin, reported as a duplicate
    path = tmp_path / "evidence.bin"
    path.write_bytes(EVIDENCE)
    assert client.pin_file("again.bin", path, cid_version=cid_version).cid == expected
    again = client.pin_file("stream.bin", ForwardOnly(EVIDENCE), cid_version=cid_version)
    assert again.cid == expected and again.is_duplicate


@pytest.mark.parametrize(("cid_version", "section"), [(0, "kubo-default v0"), (1, "kubo --cid-version=1")])
def test_pins_carry_the_js_importer_cids(client, cid_version, section):
    inputs = {
        "hello world\\n": b"hello world\n",
        "zeros_262145": bytes(262145),  # two chunks: a UnixFS tree
        "pattern_1MiB(i%256)": pattern_bytes(1_048_576, 256),
    }
    for name, data in inputs.items():
        assert client.pin_file("vector.bin", data, cid_version=cid_version).cid == js_importer_cid(section, name)
    _, files, version, _, cid, _ = next(v for v in DIRECTORY_VECTORS if v[0] == "report" and v[2] == cid_version)
    assert client.pin_directory(files, cid_version=version).cid == cid


@pytest.mark.parametrize("cid_version", [0, 1])
def test_directory_pin_cid_equals_the_local_computation(client, cid_version):
    proof = json.dumps({"policy_id": "POL-2025-0001", "damage_bps": 4200}, sort_keys=True).encode()
    files = {
        "proof-POL-2025-0001/proof.json": proof,
        "proof-POL-2025-0001/evidence/ndvi.bin": EVIDENCE,
        "proof-POL-2025-0001/evidence/weather.csv": b"day,rain_mm\n2025-06-01,0.0\n",
    }
    pin = client.pin_directory(files, cid_version=cid_version, keyvalues={"policy_id": "POL-2025-0001"})
    assert pin.cid == directory_cid(files, cid_version=cid_version)
    assert client.fetch(pin.cid, "proof.json") == proof
    assert client.fetch(pin.cid, "evidence/ndvi.bin") == EVIDENCE
    listed = client.list_pins(cid=pin.cid)
    assert listed.count == 1 and listed.rows[0].name == "proof-POL-2025-0001"
    assert listed.rows[0].keyvalues == {"policy_id": "POL-2025-0001"}


def test_v3_upload_is_public_and_served_by_the_gateway(client):
    data = b'{"claim": "KE-KAK-001", "season": 2025}'
    uploaded = client.upload_v3("claim.json", data, keyvalues={"plot_id": "KE-KAK-001"})
    assert uploaded.cid == file_cid(data, cid_version=1) and uploaded.network == "public"
    assert uploaded.size == len(data) and uploaded.id and uploaded.name == "claim.json"
    assert client.fetch(uploaded.cid) == data
    private = client.upload_v3("private.json", b"not for the gateway", network="private")
    with pytest.raises(VendorNotFound):
        client.fetch(private.cid)


def test_unpin_then_the_pin_is_gone(client):
    pin = client.pin_file("to-unpin.txt", b"short-lived evidence", cid_version=1)
    assert client.list_pins(cid=pin.cid, status="pinned").count == 1
    client.unpin(pin.cid)
    assert client.list_pins(cid=pin.cid, status="pinned").count == 0
    assert client.list_pins(cid=pin.cid, status="unpinned").rows[0].cid == pin.cid
    with pytest.raises(VendorNotFound) as caught:
        client.unpin(pin.cid)
    assert f"/pinning/unpin/{pin.cid}" in str(caught.value)
    with pytest.raises(VendorNotFound):
        client.fetch(pin.cid)


def test_list_pins_pages(client):
    for i in range(3):
        client.pin_file(f"page-{i}.txt", f"page {i}".encode(), cid_version=1)
    first = client.list_pins(status="all", page_limit=2)
    second = client.list_pins(status="all", page_limit=2, page_offset=2)
    assert len(first.rows) == 2 and first.count >= 3 and first.count == second.count
    assert not {r.cid for r in first.rows} & {r.cid for r in second.rows}


def test_metadata_and_arguments_are_validated(client):
    with pytest.raises(ValueError, match="at most 10 keyvalues, got 11"):
        check_keyvalues({f"k{i}": i for i in range(11)})
    with pytest.raises(ValueError, match="must be a string or a number"):
        check_keyvalues({"nested": {"a": 1}})
    with pytest.raises(ValueError, match="share one top-level folder"):
        directory_folder(["a/x.json", "b/y.json"])
    with pytest.raises(ValueError, match="inside a top-level folder"):
        directory_folder(["x.json"])
    with pytest.raises(ValueError, match="cid_version must be 0 or 1"):
        client.pin_file("x.bin", b"x", cid_version=2)
    with pytest.raises(ValueError, match="network 'ipfs'"):
        client.upload_v3("x.bin", b"x", network="ipfs")


def test_fetch_needs_a_gateway(sandbox, redis_resource):
    with pytest.raises(ValueError, match="PINATA_GATEWAY"):
        pinata(sandbox, redis_resource, gateway_url=None).fetch(file_cid(b"x"))


def test_a_retried_pin_sends_the_whole_body_again(sandbox, client):
    data = EVIDENCE + b"retried"
    sandbox.set_faults(fail_next=2, fail_next_status=503, paths=("/pinata/pinning/",))
    try:
        pin = client.pin_file("retried.bin", ForwardOnly(data), cid_version=1)
    finally:
        sandbox.clear_faults()
    assert pin.cid == file_cid(data, cid_version=1) and client.fetch(pin.cid) == data
