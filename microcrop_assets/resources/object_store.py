"""Object storage: MinIO / any S3 server through boto3, or a local folder behind the same interface.

Every object carries the sha256 of its bytes in its metadata, so a read can prove it got what was
written (imagery and proofs are evidence for payouts). Writes stream: a large raster is hashed
and uploaded in bounded chunks, never held whole in memory.

An object without sha256 metadata (put there by another tool) cannot be verified, so a verifying
read refuses it (UnverifiedObject) unless the caller accepts it unrecorded (`accept_unrecorded`,
for operator uploads that are checked otherwise) or does not verify at all (`verify=False`).
"""

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import dagster as dg
from pydantic import Field

from microcrop_assets import settings

CHUNK = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ObjectStoreError(Exception):
    """An object could not be stored or read as asked."""


class ObjectNotFound(ObjectStoreError):
    pass


class ChecksumMismatch(ObjectStoreError):
    pass


class UnverifiedObject(ObjectStoreError):
    """A verifying read of an object that has no sha256 metadata to verify against."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str | None
    content_type: str | None = None


def validate_key(key: str) -> str:
    """Reject keys that could escape the bucket folder or confuse tools reading it."""
    problem = None
    if not isinstance(key, str) or not key:
        problem = "is empty"
    elif len(key.encode()) > 1024:
        problem = "is longer than 1024 bytes"
    elif _CONTROL.search(key):
        problem = "contains a control character"
    elif key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        problem = "is absolute"
    elif "\\" in key:
        problem = "contains a backslash"
    elif any(part in ("", ".", "..") for part in key.split("/")):
        problem = "has an empty, '.' or '..' path segment"
    if problem:
        raise ValueError(f"object key {key!r} {problem}")
    return key


def seekable_source(source: bytes | str | os.PathLike | BinaryIO, stack: ExitStack) -> BinaryIO:
    """A seekable stream over `source`; a forward-only stream is spooled to disk (bounded memory)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(source)
    if isinstance(source, str | os.PathLike):
        return stack.enter_context(open(source, "rb"))
    if hasattr(source, "seekable") and source.seekable():
        return source
    spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=16 * CHUNK))  # noqa: SIM115 (closed by stack)
    shutil.copyfileobj(source, spool, CHUNK)
    spool.seek(0)
    return spool


def _sha256_of(stream: BinaryIO) -> tuple[str, int]:
    """Hash from the current position to the end, then rewind to where it was."""
    start = stream.tell()
    digest, size = hashlib.sha256(), 0
    while block := stream.read(CHUNK):
        digest.update(block)
        size += len(block)
    stream.seek(start)
    return digest.hexdigest(), size


class _VerifyingWriter:
    """Copies chunks to `dest` while hashing; checks the hash once the copy is complete."""

    def __init__(self, key: str, expected: str | None):
        self.key, self.expected = key, expected
        self.digest, self.size = hashlib.sha256(), 0

    def feed(self, block: bytes) -> bytes:
        self.digest.update(block)
        self.size += len(block)
        return block

    def check(self, verify: bool) -> str:
        actual = self.digest.hexdigest()
        if verify and self.expected and actual != self.expected:
            raise ChecksumMismatch(f"object {self.key!r}: sha256 {actual} does not match the stored {self.expected}")
        return actual


class ObjectStoreResource(dg.ConfigurableResource):
    """Resource key `object_store`. `endpoint` set: S3 protocol; unset: a folder under MICROCROP_HOME."""

    endpoint: str | None = Field(default=None, description="MINIO_ENDPOINT, e.g. http://minio:9000")
    access_key: str | None = Field(default=None, description="MINIO_ACCESS_KEY")
    secret_key: str | None = Field(default=None, description="MINIO_SECRET_KEY")
    bucket: str = Field(default="microcrop", description="MINIO_BUCKET, created when missing")
    region: str = "us-east-1"
    local_root: str | None = Field(default=None, description="folder for the local store")
    multipart_threshold: int = 16 * CHUNK
    multipart_chunksize: int = 8 * CHUNK

    @property
    def is_local(self) -> bool:
        return not self.endpoint

    def describe(self) -> str:
        return f"local folder {self._root}" if self.is_local else f"s3 {self.endpoint}/{self.bucket}"

    # -- backends -------------------------------------------------------------------------------

    @cached_property
    def _root(self) -> Path:
        root = Path(self.local_root) if self.local_root else settings.home() / "objects" / self.bucket
        root.mkdir(parents=True, exist_ok=True)
        return root

    @cached_property
    def _s3(self):
        # boto3 is imported here, by the first S3 call: the definitions load without it
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ClientError

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        )
        try:
            client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            client.create_bucket(Bucket=self.bucket)
        return client

    @cached_property
    def _staging(self) -> Path:
        # same file system as the objects (rename is atomic) but outside what list() walks
        staging = self._root.parent / f".{self.bucket}.staging"
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def _local_path(self, key: str) -> Path:
        return self._root / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self._root.parent / f".{self.bucket}.meta" / f"{validate_key(key)}.json"

    # -- writes ---------------------------------------------------------------------------------

    def put(
        self, key: str, source: bytes | str | os.PathLike | BinaryIO, content_type: str | None = None
    ) -> StoredObject:
        """Store bytes, a file path or a binary stream under `key`, with its sha256 in metadata."""
        validate_key(key)
        with ExitStack() as stack:
            stream = seekable_source(source, stack)
            sha, size = _sha256_of(stream)
            if self.is_local:
                self._put_local(key, stream, sha, content_type)
            else:
                extra = {"Metadata": {"sha256": sha}}
                if content_type:
                    extra["ContentType"] = content_type
                from boto3.s3.transfer import TransferConfig

                transfer = TransferConfig(
                    multipart_threshold=self.multipart_threshold, multipart_chunksize=self.multipart_chunksize
                )
                self._s3.upload_fileobj(stream, self.bucket, key, ExtraArgs=extra, Config=transfer)
        return StoredObject(key=key, size=size, sha256=sha, content_type=content_type)

    def _put_local(self, key: str, stream: BinaryIO, sha: str, content_type: str | None) -> None:
        path, meta = self._local_path(key), self._meta_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta.parent.mkdir(parents=True, exist_ok=True)
        # write beside the target then rename: readers see the old object or the new one
        with tempfile.NamedTemporaryFile(dir=self._staging, delete=False) as tmp:
            shutil.copyfileobj(stream, tmp, CHUNK)
        meta.write_text(json.dumps({"sha256": sha, "content_type": content_type}))
        os.replace(tmp.name, path)

    # -- reads ----------------------------------------------------------------------------------

    def head(self, key: str) -> StoredObject:
        if self.is_local:
            path = self._local_path(key)
            if not path.is_file():
                raise ObjectNotFound(f"object {key!r} not found in {self.describe()}")
            meta = self._meta_path(key)
            info = json.loads(meta.read_text()) if meta.exists() else {}
            return StoredObject(key, path.stat().st_size, info.get("sha256"), info.get("content_type"))
        from botocore.exceptions import ClientError

        try:
            response = self._s3.head_object(Bucket=self.bucket, Key=validate_key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(f"object {key!r} not found in {self.describe()}") from None
            raise
        return StoredObject(
            key, response["ContentLength"], response.get("Metadata", {}).get("sha256"), response.get("ContentType")
        )

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def iter_chunks(self, key: str, verify: bool = True, accept_unrecorded: bool = False) -> Iterator[bytes]:
        """Stream an object's bytes; with `verify`, raise ChecksumMismatch at the end if they differ
        from the recorded sha256, and UnverifiedObject before any byte if none is recorded (unless
        `accept_unrecorded`)."""
        info = self.head(key)
        if verify and info.sha256 is None and not accept_unrecorded:
            raise UnverifiedObject(
                f"object {key!r} in {self.describe()} has no sha256 metadata (not written by this store), so "
                "its bytes cannot be verified; put it again through the store, or read it unverified on purpose"
            )
        writer = _VerifyingWriter(key, info.sha256)
        if self.is_local:
            with open(self._local_path(key), "rb") as handle:
                while block := handle.read(CHUNK):
                    yield writer.feed(block)
        else:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            for block in body.iter_chunks(CHUNK):
                yield writer.feed(block)
        writer.check(verify)

    def get_bytes(self, key: str, verify: bool = True, accept_unrecorded: bool = False) -> bytes:
        return b"".join(self.iter_chunks(key, verify, accept_unrecorded))

    def download(
        self, key: str, dest: str | os.PathLike | BinaryIO, verify: bool = True, accept_unrecorded: bool = False
    ) -> StoredObject:
        """Copy an object to a path or stream. A path is written only once the checksum holds."""
        if isinstance(dest, str | os.PathLike):
            target = Path(dest)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                try:
                    for block in self.iter_chunks(key, verify, accept_unrecorded):
                        tmp.write(block)
                except BaseException:
                    os.unlink(tmp.name)
                    raise
            os.replace(tmp.name, target)
        else:
            for block in self.iter_chunks(key, verify, accept_unrecorded):
                dest.write(block)
        return self.head(key)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""
        if prefix:
            validate_key(prefix.rstrip("/"))
        if self.is_local:
            return sorted(
                str(p.relative_to(self._root))
                for p in self._root.rglob("*")
                if p.is_file() and str(p.relative_to(self._root)).startswith(prefix)
            )
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        if self.is_local:
            self._local_path(key).unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
        else:
            self._s3.delete_object(Bucket=self.bucket, Key=validate_key(key))

    def ping(self) -> bool:
        if self.is_local:
            return self._root.is_dir()
        self._s3.head_bucket(Bucket=self.bucket)
        return True
