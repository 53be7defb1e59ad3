"""Pinata: pin payout proofs to IPFS (legacy pinning API and the v3 Files API) and read them back.

The CID version is always sent explicitly (Pinata's default is undocumented), so the CID Pinata
returns can be checked against `microcrop_assets.proofs.cid` computed locally before it is
anchored on-chain. Pins are content-addressed, so repeating a pin after a lost response is harmless
(Pinata answers `isDuplicate`): pin uploads are retried like reads.
"""

import datetime as dt
import io
import json
import os
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from typing import Any, BinaryIO

from pydantic import Field

from microcrop_assets.resources.http import MiB, VendorClient, VendorResource, parse_text, parse_timestamp
from microcrop_assets.resources.object_store import seekable_source

MAX_KEYVALUES = 10
NETWORKS = ("public", "private")
PIN_STATUSES = ("all", "pinned", "unpinned")
RAW_BLOCK = "application/vnd.ipld.raw"  # trustless gateway response: one block, exactly as hashed

# a forward-only stream is spooled to a seekable file first, so a retry can send it again
PinSource = bytes | str | os.PathLike | BinaryIO


@dataclass(frozen=True)
class Pin:
    cid: str
    size: int  # PinSize: cumulative DAG size in bytes
    timestamp: dt.datetime | None
    is_duplicate: bool


@dataclass(frozen=True)
class UploadedFile:
    id: str
    name: str | None
    cid: str
    size: int
    created_at: dt.datetime | None
    number_of_files: int | None
    mime_type: str | None
    group_id: str | None
    is_duplicate: bool
    network: str


@dataclass(frozen=True)
class PinnedItem:
    cid: str
    size: int
    date_pinned: dt.datetime | None
    name: str | None
    keyvalues: dict[str, Any]


@dataclass(frozen=True)
class PinList:
    count: int  # all pins matching the filters, not only this page
    rows: list[PinnedItem]


# -- pure parsing and validation ------------------------------------------------------------------


def check_keyvalues(keyvalues: Mapping[str, Any] | None) -> dict[str, Any]:
    """Pinata metadata: at most 10 entries, string keys, string or number values."""
    keyvalues = dict(keyvalues or {})
    if len(keyvalues) > MAX_KEYVALUES:
        raise ValueError(f"Pinata allows at most {MAX_KEYVALUES} keyvalues, got {len(keyvalues)}: {sorted(keyvalues)}")
    for key, value in keyvalues.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"keyvalue key {key!r} must be a non-empty string")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"keyvalue {key!r} = {value!r} must be a string or a number")
    return keyvalues


def _check_cid_version(cid_version: int) -> None:
    if cid_version not in (0, 1):
        raise ValueError(f"cid_version must be 0 or 1, got {cid_version!r}")


def directory_folder(paths: list[str]) -> str:
    """The one top-level folder shared by every relative path of a directory upload."""
    if not paths:
        raise ValueError("a directory pin needs at least one file")
    folders = set()
    for path in paths:
        segments = path.split("/") if isinstance(path, str) else []
        if path.startswith("/") or len(segments) < 2 or any(s in ("", ".", "..") for s in segments):
            raise ValueError(f"directory path {path!r} must be relative and inside a top-level folder, e.g. 'proof/a'")
        folders.add(segments[0])
    if len(folders) != 1:
        raise ValueError(f"directory paths must share one top-level folder, found {sorted(folders)}")
    return folders.pop()


def _size(value: Any, name: str) -> int:
    """A byte count as Pinata sends it (an integer, or its digits as text); anything else is refused
    naming the field (an infinite or fractional size, a boolean, an object)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    shown = repr(value[:80]) if isinstance(value, str) else f"a {type(value).__name__}"
    raise ValueError(f"{name} must be a whole number of bytes, got {shown}")


def parse_pin(payload: Any) -> Pin:
    if not isinstance(payload, dict) or not payload.get("IpfsHash"):
        raise ValueError("expected an object with IpfsHash")
    return Pin(
        cid=parse_text(payload["IpfsHash"], "IpfsHash"),
        size=_size(payload.get("PinSize"), "PinSize"),
        timestamp=parse_timestamp(payload.get("Timestamp"), "Timestamp"),
        is_duplicate=bool(payload.get("isDuplicate", False)),
    )


def parse_upload(payload: Any, network: str) -> UploadedFile:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or not data.get("cid") or not data.get("id"):
        raise ValueError("expected {data: {id, cid, ...}}")
    return UploadedFile(
        id=str(data["id"]),
        name=data.get("name"),
        cid=parse_text(data["cid"], "cid"),
        size=_size(data.get("size") or 0, "size"),
        created_at=parse_timestamp(data.get("created_at"), "created_at"),
        number_of_files=data.get("number_of_files"),
        mime_type=data.get("mime_type"),
        group_id=data.get("group_id"),
        is_duplicate=bool(data.get("is_duplicate", False)),
        network=network,
    )


def parse_pin_list(payload: Any) -> PinList:
    if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
        raise ValueError("expected {count, rows: [...]}")
    rows = []
    for row in payload["rows"]:
        metadata = row.get("metadata") or {}
        rows.append(
            PinnedItem(
                cid=row["ipfs_pin_hash"],
                size=int(row.get("size") or 0),
                date_pinned=parse_timestamp(row.get("date_pinned")),
                name=metadata.get("name"),
                keyvalues=metadata.get("keyvalues") or {},
            )
        )
    return PinList(count=int(payload.get("count", len(rows))), rows=rows)


# -- the resource ---------------------------------------------------------------------------------


class PinataResource(VendorResource):
    """Resource key `pinata`: PINATA_API_URL, PINATA_UPLOADS_URL, PINATA_JWT, PINATA_GATEWAY."""

    vendor = "pinata"
    error_keys = ("error", "message", "detail")
    secret_fields = ("jwt", "api_key", "api_secret")
    # API answers (a pin list page is under 1 MB), proofs (KBs) and folder blocks (under 256 KiB)
    default_max_response_bytes = 16 * MiB

    api_url: str = Field(default="https://api.pinata.cloud", description="PINATA_API_URL (legacy API)")
    uploads_url: str = Field(default="https://uploads.pinata.cloud", description="PINATA_UPLOADS_URL (v3 uploads)")
    gateway_url: str | None = Field(
        default=None, description="PINATA_GATEWAY, e.g. https://name.mypinata.cloud (a trailing /ipfs is fine)"
    )
    jwt: str | None = Field(default=None, repr=False, description="PINATA_JWT, sent as a Bearer token")
    api_key: str | None = Field(default=None, repr=False, description="legacy key (with api_secret) if no JWT")
    api_secret: str | None = Field(default=None, repr=False, description="legacy secret key")

    def _auth_headers(self) -> dict[str, str]:
        if self.jwt:
            return {"Authorization": f"Bearer {self.jwt}"}
        if self.api_key and self.api_secret:
            return {"pinata_api_key": self.api_key, "pinata_secret_api_key": self.api_secret}
        raise ValueError("Pinata needs a JWT (PINATA_JWT) or both api_key and api_secret; none is configured")

    @cached_property
    def _uploads(self) -> VendorClient:
        # same account, so the same rate-limit bucket as the legacy API
        return self._make_client(self.uploads_url, self._auth_headers(), self.vendor)

    @cached_property
    def _gateway(self) -> VendorClient:
        if not self.gateway_url:
            raise ValueError("no Pinata gateway configured (PINATA_GATEWAY); cannot fetch pinned content")
        return self._make_client(self.gateway_url, {}, f"{self.vendor}-gateway")

    def test_authentication(self) -> str:
        """The API's greeting when the credentials are accepted; VendorAuthError otherwise."""
        return self._client.request_json(
            "GET", "/data/testAuthentication", parse=lambda payload: str(payload["message"])
        )

    def pin_file(
        self,
        name: str,
        data: PinSource,
        cid_version: int = 1,
        keyvalues: Mapping[str, Any] | None = None,
        group_id: str | None = None,
    ) -> Pin:
        """Pin one file (bytes, a path or a binary stream) with pinFileToIPFS."""
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"pin name {name!r} must be a non-empty file name without '/'")
        form = self._pin_form(name, cid_version, keyvalues, group_id)
        with ExitStack() as stack:
            files = [("file", (name, seekable_source(data, stack), "application/octet-stream"))]
            return self._pin(files, form)

    def pin_directory(
        self,
        files: Mapping[str, bytes | str | os.PathLike],
        cid_version: int = 1,
        name: str | None = None,
        keyvalues: Mapping[str, Any] | None = None,
        group_id: str | None = None,
    ) -> Pin:
        """Pin files keyed 'folder/relative/path' in one request; the CID is the folder's."""
        folder = directory_folder(list(files))
        form = self._pin_form(name or folder, cid_version, keyvalues, group_id)
        with ExitStack() as stack:
            parts = [
                ("file", (path, seekable_source(content, stack), "application/octet-stream"))
                for path, content in sorted(files.items())
            ]
            return self._pin(parts, form)

    def _pin_form(
        self, name: str, cid_version: int, keyvalues: Mapping[str, Any] | None, group_id: str | None
    ) -> dict[str, str]:
        _check_cid_version(cid_version)
        options: dict[str, Any] = {"cidVersion": cid_version}
        if group_id:
            options["groupId"] = group_id
        return {
            "pinataMetadata": json.dumps({"name": name, "keyvalues": check_keyvalues(keyvalues)}),
            "pinataOptions": json.dumps(options),
        }

    def _pin(self, files: list, form: dict[str, str]) -> Pin:
        return self._client.request_json(
            "POST", "/pinning/pinFileToIPFS", files=files, data=form, parse=parse_pin, idempotent=True
        )

    def upload_v3(
        self,
        name: str,
        data: PinSource,
        network: str = "public",
        keyvalues: Mapping[str, Any] | None = None,
        group_id: str | None = None,
    ) -> UploadedFile:
        """Upload one file with the v3 Files API (`public` puts it on IPFS)."""
        if network not in NETWORKS:
            raise ValueError(f"network {network!r} is not one of {NETWORKS}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"upload name {name!r} must be a non-empty string")
        form = {"network": network, "name": name}
        if keyvalues:
            form["keyvalues"] = json.dumps(check_keyvalues(keyvalues))
        if group_id:
            form["group_id"] = group_id
        with ExitStack() as stack:
            files = [("file", (name, seekable_source(data, stack), "application/octet-stream"))]
            return self._uploads.request_json(
                "POST", "/v3/files", files=files, data=form, idempotent=True,
                parse=lambda payload: parse_upload(payload, network),
            )  # fmt: skip

    def unpin(self, cid: str) -> None:
        _check_cid(cid)
        self._client.request_bytes("DELETE", f"/pinning/unpin/{cid}")

    def list_pins(
        self, cid: str | None = None, status: str = "pinned", page_limit: int = 10, page_offset: int = 0
    ) -> PinList:
        if status not in PIN_STATUSES:
            raise ValueError(f"pin status {status!r} is not one of {PIN_STATUSES}")
        if not 1 <= page_limit <= 1000 or page_offset < 0:
            raise ValueError(f"page_limit {page_limit} must be 1..1000 and page_offset {page_offset} >= 0")
        params: dict[str, Any] = {"status": status, "pageLimit": page_limit, "pageOffset": page_offset}
        if cid:
            params["cid"] = _check_cid(cid)
        return self._client.request_json("GET", "/data/pinList", params=params, parse=parse_pin_list)

    def fetch(self, cid: str, path: str = "") -> bytes:
        """Content of `cid` (or a file inside a pinned folder) from the gateway, to verify a pin.

        The gateway is not trusted: check the bytes against the CID (`proofs.pinning.fetch_verified`)."""
        buffer = io.BytesIO()
        self._gateway.download(self._gateway_path(cid, path), buffer)
        return buffer.getvalue()

    def fetch_block(self, cid: str) -> bytes:
        """The raw block of `cid` from the gateway (the trustless gateway form `?format=raw`), whose
        sha256 must give the CID: a folder's block lists its entries' CIDs."""
        return self._gateway.request_bytes(
            "GET", self._gateway_path(cid), params={"format": "raw"}, headers={"Accept": RAW_BLOCK}
        )

    def _gateway_path(self, cid: str, path: str = "") -> str:
        _check_cid(cid)
        # content sits at {gateway}/ipfs/{cid}; PINATA_GATEWAY may name the host or already end in /ipfs
        prefix = "" if self._gateway.base_url.path.rstrip("/").endswith("/ipfs") else "ipfs/"
        return f"{prefix}{cid}/{path.lstrip('/')}" if path else f"{prefix}{cid}"


def _check_cid(cid: str) -> str:
    if not isinstance(cid, str) or not cid.isalnum():
        raise ValueError(f"{cid!r} is not a CID")
    return cid
