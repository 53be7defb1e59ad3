"""The Pinata simulator over real HTTP: pins under their true CID, gateway, listings, auth, rate limits.

The simulator computes CIDs with microcrop_assets.proofs.cid, so comparing its answers with
`file_cid`/`directory_cid` compares that code with itself: it checks the routes, not the CIDs.
`test_pinned_cids_are_the_js_importer_vectors` compares with the independent oracle, the official
JS importer's vectors (data/cid_vectors.txt).
"""

import gc
import json
import os
import warnings

import httpx
import pytest

from microcrop_assets.proofs.cid import directory_cid, file_cid
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

from .conftest import SANDBOX_NOW as NOW
from .test_proofs_cid import js_importer_cid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(sandbox):
    headers = {"Authorization": f"Bearer {sandbox.credentials.pinata_jwt}"}
    with httpx.Client(base_url=sandbox.pinata_url, headers=headers, timeout=30) as client:
        yield client


def pin_file(client, parts, options=None, metadata=None) -> httpx.Response:
    data = {}
    if options is not None:
        data["pinataOptions"] = json.dumps(options)
    if metadata is not None:
        data["pinataMetadata"] = json.dumps(metadata)
    return client.post("/pinning/pinFileToIPFS", files=[("file", part) for part in parts], data=data)


def test_authentication_by_jwt_and_key_pair(sandbox, client):
    url = f"{sandbox.pinata_url}/data/testAuthentication"
    assert client.get("/data/testAuthentication").json()["message"].startswith("Congratulations")
    pair = {
        "pinata_api_key": sandbox.credentials.pinata_api_key,
        "pinata_secret_api_key": sandbox.credentials.pinata_secret_api_key,
    }
    assert httpx.get(url, headers=pair).status_code == 200
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {**pair, "pinata_secret_api_key": "wrong"},
        {"pinata_api_key": pair["pinata_api_key"]},
        {"Authorization": "Basic abc"},
    ):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert "error" in response.json() and "wrong" not in response.text
    wrong = {"Authorization": "Bearer wrong"}
    for method, url in (
        ("POST", f"{sandbox.pinata_url}/pinning/pinFileToIPFS"),
        ("POST", f"{sandbox.pinata_url}/pinning/pinJSONToIPFS"),
        ("DELETE", f"{sandbox.pinata_url}/pinning/unpin/bafkqaaa"),
        ("GET", f"{sandbox.pinata_url}/data/pinList"),
        ("GET", f"{sandbox.pinata_url}/v3/files/public"),
        ("POST", f"{sandbox.pinata_uploads_url}/v3/files"),
    ):
        response = httpx.request(method, url, headers=wrong)
        assert response.status_code == 401 and "X-RateLimit-Remaining" in response.headers, url


@pytest.mark.parametrize("version", [0, 1])
def test_pinned_bytes_come_back_under_the_cid_ipfs_computes(sandbox, client, version):
    payload = os.urandom(700_000)  # three chunks: a dag-pb root over the leaves
    response = pin_file(
        client,
        [("claim.bin", payload, "application/octet-stream")],
        {"cidVersion": version},
        {"name": "claim", "keyvalues": {"policy": "POL-1"}},
    )
    assert response.status_code == 200
    answer = response.json()
    assert list(answer) == ["IpfsHash", "PinSize", "Timestamp", "isDuplicate"]
    assert answer["IpfsHash"] == file_cid(payload, cid_version=version)
    assert answer["PinSize"] > len(payload) and answer["isDuplicate"] is False
    assert answer["Timestamp"] == "2025-08-01T12:00:00.000Z"
    served = httpx.get(f"{sandbox.gateway_url}/{answer['IpfsHash']}")
    assert served.status_code == 200 and served.content == payload
    again = pin_file(client, [("claim.bin", payload, "application/octet-stream")], {"cidVersion": version})
    assert again.json()["isDuplicate"] is True and again.json()["IpfsHash"] == answer["IpfsHash"]


@pytest.mark.parametrize(("version", "section"), [(0, "kubo-default v0"), (1, "kubo --cid-version=1")])
def test_pinned_cids_are_the_js_importer_vectors(sandbox, client, version, section):
    for name, data in (('{"a":1}', b'{"a":1}'), ("zeros_262145", bytes(262145))):
        answer = pin_file(client, [("v.bin", data, "application/octet-stream")], {"cidVersion": version}).json()
        assert answer["IpfsHash"] == js_importer_cid(section, name)
        assert httpx.get(f"{sandbox.gateway_url}/{answer['IpfsHash']}").content == data


def test_folder_pin_is_the_directory_cid_and_paths_resolve(sandbox, client):
    files = {"proof/assessment.json": b'{"damage":0.42}', "proof/inputs/weather.csv": b"day,rain\n2025-06-01,0\n"}
    response = pin_file(
        client, [(path, data, "application/octet-stream") for path, data in files.items()], {"cidVersion": 1}
    )
    assert response.status_code == 200
    folder = response.json()["IpfsHash"]
    assert folder == directory_cid(files, cid_version=1)
    gateway = sandbox.gateway_url
    assert httpx.get(f"{gateway}/{folder}/inputs/weather.csv").content == files["proof/inputs/weather.csv"]
    assert httpx.get(f"{gateway}/{folder}/assessment.json").headers["content-type"].startswith("application/json")
    assert httpx.get(f"{gateway}/{folder}").text.splitlines() == ["assessment.json", "inputs/weather.csv"]
    assert httpx.get(f"{gateway}/{folder}/missing.txt").status_code == 404
    # each file is also reachable by its own CID
    assert httpx.get(f"{gateway}/{file_cid(files['proof/assessment.json'])}").content == files["proof/assessment.json"]
    bad = pin_file(client, [("a/x.json", b"1", "text/plain"), ("b/y.json", b"2", "text/plain")], {"cidVersion": 1})
    assert bad.status_code == 400 and "top-level folder" in bad.json()["error"]["details"]


def test_wrap_with_directory(client):
    data = b"wrapped"
    response = pin_file(client, [("note.txt", data, "text/plain")], {"cidVersion": 0, "wrapWithDirectory": True})
    assert response.json()["IpfsHash"] == directory_cid({"any/note.txt": data}, cid_version=0)


@pytest.mark.parametrize(
    ("options", "metadata", "words"),
    [
        (None, None, "pinataOptions"),
        ({}, None, "cidVersion"),
        ({"cidVersion": 2}, None, "cidVersion"),
        ({"cidVersion": 1}, {"keyvalues": {str(k): k for k in range(11)}}, "at most 10"),
    ],
)
def test_bad_pin_requests_are_400(client, options, metadata, words):
    response = pin_file(client, [("x.txt", b"x", "text/plain")], options, metadata)
    assert response.status_code == 400
    assert words in response.json()["error"]["details"]


def test_pin_json_reserialises_content(sandbox, client):
    content = {"policy": "POL-2025-0001", "damage_bps": 4200, "note": "sécheresse"}
    body = {"pinataContent": content, "pinataMetadata": {"name": "proof"}, "pinataOptions": {"cidVersion": 1}}
    answer = client.post("/pinning/pinJSONToIPFS", json=body).json()
    served = httpx.get(f"{sandbox.gateway_url}/{answer['IpfsHash']}")
    assert json.loads(served.content) == content
    assert answer["IpfsHash"] == file_cid(served.content, cid_version=1)
    assert client.post("/pinning/pinJSONToIPFS", json={"pinataContent": content}).status_code == 400


def test_unpin_pin_list_and_filters(sandbox, client):
    cids = [
        pin_file(client, [(f"list-{n}.txt", f"row {n}".encode(), "text/plain")], {"cidVersion": 1}).json()["IpfsHash"]
        for n in range(3)
    ]
    assert client.delete(f"/pinning/unpin/{cids[0]}").status_code == 200
    missing = client.delete(f"/pinning/unpin/{cids[0]}")
    assert missing.status_code == 404 and "error" in missing.json()
    assert httpx.get(f"{sandbox.gateway_url}/{cids[0]}").status_code == 404

    everything = client.get("/data/pinList", params={"pageLimit": 1000}).json()
    assert everything["count"] == len(everything["rows"]) >= 3
    row = everything["rows"][0]
    assert row["ipfs_pin_hash"] == cids[2]  # newest first
    assert {"id", "ipfs_pin_hash", "size", "date_pinned", "date_unpinned", "metadata"} <= set(row)
    unpinned = client.get("/data/pinList", params={"status": "unpinned"}).json()["rows"]
    assert [r["ipfs_pin_hash"] for r in unpinned] == [cids[0]] and unpinned[0]["date_unpinned"]
    pinned = client.get("/data/pinList", params={"status": "pinned", "pageLimit": 1000}).json()["rows"]
    assert cids[0] not in {r["ipfs_pin_hash"] for r in pinned}
    by_cid = client.get("/data/pinList", params={"cid": cids[1]}).json()["rows"]
    assert [r["ipfs_pin_hash"] for r in by_cid] == [cids[1]]
    page = client.get("/data/pinList", params={"pageLimit": 1, "pageOffset": 1}).json()["rows"]
    assert [r["ipfs_pin_hash"] for r in page] == [cids[1]]
    for params in ({"pageLimit": "ten"}, {"pageLimit": 0}, {"status": "gone"}):
        assert client.get("/data/pinList", params=params).status_code == 400


def test_v3_upload_and_paged_listing(sandbox, client):
    uploads = httpx.Client(base_url=sandbox.pinata_uploads_url, headers=client.headers)
    answers = []
    for n in range(3):
        data = f"v3 file {n}".encode()
        response = uploads.post(
            "/v3/files",
            files={"file": (f"v3-{n}.txt", data, "text/plain")},
            data={"network": "public", "name": f"v3-{n}", "keyvalues": json.dumps({"n": str(n)})},
        )
        assert response.status_code == 200
        answer = response.json()["data"]
        assert {"id", "name", "cid", "size", "created_at", "number_of_files", "mime_type", "group_id"} <= set(answer)
        assert answer["cid"] == file_cid(data, cid_version=1) and answer["size"] == len(data)
        assert answer["is_duplicate"] is False and answer["mime_type"] == "text/plain"
        assert httpx.get(f"{sandbox.gateway_url}/{answer['cid']}").content == data
        answers.append(answer)
    private = uploads.post("/v3/files", files={"file": ("secret.txt", b"private bytes")}).json()["data"]
    assert httpx.get(f"{sandbox.gateway_url}/{private['cid']}").status_code == 404
    assert uploads.post("/v3/files", files={"file": ("x", b"x")}, data={"network": "moon"}).status_code == 400
    uploads.close()

    seen, token = [], None
    while True:
        params = {"limit": 2} | ({"pageToken": token} if token else {})
        page = client.get("/v3/files/public", params=params).json()["data"]
        seen += [f["cid"] for f in page["files"]]
        token = page["next_page_token"]
        if not token:
            break
    assert [a["cid"] for a in reversed(answers)] == [cid for cid in seen if cid in {a["cid"] for a in answers}]
    assert private["cid"] not in seen
    assert [f["cid"] for f in client.get("/v3/files/private").json()["data"]["files"]] == [private["cid"]]
    assert client.get("/v3/files/public", params={"pageToken": "%%%"}).status_code == 400


def test_rate_limit_headers_and_429():
    clock = ManualClock(NOW)
    with running_sandbox(clock=clock, pinata_rate_limit_per_minute=3) as sandbox:
        client = httpx.Client(
            base_url=sandbox.pinata_url, headers={"Authorization": f"Bearer {sandbox.credentials.pinata_jwt}"}
        )
        answers = [client.get("/data/testAuthentication") for _ in range(4)]
        clock.advance(seconds=60)
        after_window = client.get("/data/testAuthentication")
        client.close()
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["X-RateLimit-Limit"] == "3" for a in answers)
    assert int(answers[0].headers["X-RateLimit-Reset"]) == int(NOW.timestamp()) + 60
    assert int(answers[3].headers["Retry-After"]) == 60 and "error" in answers[3].json()
    assert after_window.status_code == 200


def test_uploads_leave_no_spooled_file_open(sandbox, client):
    """Each multipart upload's spooled temp files are closed with the request (a season pins thousands;
    unclosed, each waited for the garbage collector with a ResourceWarning)."""
    uploads = httpx.Client(base_url=sandbox.pinata_uploads_url, headers=client.headers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for n in range(5):
            assert pin_file(client, [(f"leak-{n}.json", b'{"n": %d}' % n)], {"cidVersion": 1}).status_code == 200
            assert uploads.post("/v3/files", files={"file": (f"v3-leak-{n}", b"x%d" % n)}).status_code == 200
        assert pin_file(client, [("refused.json", b"{}")]).status_code == 400  # no pinataOptions: refused
        gc.collect()
    uploads.close()
    assert [str(w.message) for w in caught if "SpooledTemporaryFile" in str(w.message)] == []
