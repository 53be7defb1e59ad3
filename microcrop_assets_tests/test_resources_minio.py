import hashlib
import io

import pytest

from microcrop_assets.resources.object_store import ChecksumMismatch, ObjectNotFound, UnverifiedObject, validate_key


# the local folder needs no service, the S3 protocol a moto_server
@pytest.fixture(
    params=[pytest.param("local", marks=pytest.mark.unit), pytest.param("s3", marks=pytest.mark.integration)]
)
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


def test_round_trip_with_checksum(store, tmp_path):
    data = b"ndvi raster bytes " * 1000
    stored = store.put("rasters/2025-06-01/KE-KAK-001.tif", data, content_type="image/tiff")
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    head = store.head("rasters/2025-06-01/KE-KAK-001.tif")
    assert head.sha256 == stored.sha256 and head.size == len(data) and head.content_type == "image/tiff"
    assert store.get_bytes("rasters/2025-06-01/KE-KAK-001.tif") == data
    target = tmp_path / "copy.tif"
    store.download("rasters/2025-06-01/KE-KAK-001.tif", target)
    assert target.read_bytes() == data


def test_streamed_upload_larger_than_multipart_threshold(store):
    size = 12 * 1024 * 1024 + 17
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    class NonSeekable(io.RawIOBase):  # like an HTTP body: can only be read forward
        def __init__(self):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self.inner.read(min(len(buffer), 65536))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    stored = store.put("big/blob.bin", NonSeekable())
    assert stored.size == size and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(store.get_bytes("big/blob.bin")).hexdigest() == stored.sha256
    if not store.is_local:
        etag = store._s3.head_object(Bucket=store.bucket, Key="big/blob.bin")["ETag"]
        assert etag.strip('"').endswith("-3")  # three 5 MiB parts: really a multipart upload


def tamper(store, key: str, data: bytes) -> None:
    """Replace an object's bytes behind the store's back, keeping its recorded sha256."""
    if store.is_local:
        (store._root / key).write_bytes(data)
    else:
        recorded = store.head(key).sha256
        store._s3.put_object(Bucket=store.bucket, Key=key, Body=data, Metadata={"sha256": recorded})


def assert_download_refused(store, key: str, tmp_path, error: type[Exception]) -> None:
    """A refused download leaves nothing in the target's folder: neither the file nor a temp file."""
    downloads = tmp_path / "downloads"
    downloads.mkdir(exist_ok=True)
    with pytest.raises(error):
        store.download(key, downloads / "copy.json")
    assert list(downloads.iterdir()) == []


def test_tampered_object_fails_verification(store, tmp_path):
    store.put("proofs/p.json", b'{"payout": 1}')
    tamper(store, "proofs/p.json", b'{"payout": 9}')
    with pytest.raises(ChecksumMismatch, match="proofs/p.json"):
        store.get_bytes("proofs/p.json")
    assert_download_refused(store, "proofs/p.json", tmp_path, ChecksumMismatch)
    assert store.get_bytes("proofs/p.json", verify=False) == b'{"payout": 9}'


def put_unrecorded(store, key: str, data: bytes) -> None:
    """An object written by another tool: no sha256 metadata."""
    if store.is_local:
        path = store._root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        store._s3.put_object(Bucket=store.bucket, Key=key, Body=data)


def test_an_object_without_sha256_is_refused_unless_accepted_on_purpose(store, tmp_path):
    put_unrecorded(store, "proofs/unrecorded.json", b'{"payout": 5}')
    assert store.head("proofs/unrecorded.json").sha256 is None
    with pytest.raises(UnverifiedObject, match="'proofs/unrecorded.json'.*no sha256 metadata"):
        store.get_bytes("proofs/unrecorded.json")
    assert_download_refused(store, "proofs/unrecorded.json", tmp_path, UnverifiedObject)
    assert store.get_bytes("proofs/unrecorded.json", accept_unrecorded=True) == b'{"payout": 5}'
    assert store.get_bytes("proofs/unrecorded.json", verify=False) == b'{"payout": 5}'
    # accepting unrecorded objects still checks the ones that are recorded
    store.put("proofs/recorded.json", b'{"payout": 1}')
    tamper(store, "proofs/recorded.json", b'{"payout": 9}')
    with pytest.raises(ChecksumMismatch):
        store.get_bytes("proofs/recorded.json", accept_unrecorded=True)
    # put again through the store, it verifies
    store.put("proofs/unrecorded.json", b'{"payout": 5}')
    assert store.get_bytes("proofs/unrecorded.json") == b'{"payout": 5}'


def test_exists_list_delete(store):
    for key in ("a/1.txt", "a/2.txt", "b/3.txt"):
        store.put(key, key.encode())
    assert store.list("a/") == ["a/1.txt", "a/2.txt"]
    assert store.exists("b/3.txt") and not store.exists("b/4.txt")
    store.delete("a/1.txt")
    assert store.list() == ["a/2.txt", "b/3.txt"]
    with pytest.raises(ObjectNotFound, match="a/1.txt"):
        store.get_bytes("a/1.txt")


@pytest.mark.integration
def test_bucket_is_created_when_missing(s3_store):
    assert s3_store.ping()
    assert s3_store.bucket in [b["Name"] for b in s3_store._s3.list_buckets()["Buckets"]]


@pytest.mark.integration
@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "a/../../b",
        "/abs/key",
        "a//b",
        "a/./b",
        "tab\there",
        "nul\x00",
        "",
        "back\\slash",
        "C:/windows",
    ],
)
def test_bad_keys_are_rejected_everywhere(key, local_store, s3_store):
    with pytest.raises(ValueError, match="object key"):
        validate_key(key)
    for store in (local_store, s3_store):
        with pytest.raises(ValueError, match="object key"):
            store.put(key, b"x")
        with pytest.raises(ValueError, match="object key"):
            store.get_bytes(key)
