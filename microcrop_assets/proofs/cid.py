"""IPFS content identifiers computed locally, exactly as `ipfs add` / Pinata compute them.

Proof bundles are pinned to IPFS and their CIDs anchored on-chain, so the pipeline must know the CID
of a claim's evidence without trusting the pinning service. This module re-implements the UnixFS
importer (fixed-size chunker, balanced layout, dag-pb nodes) and was checked against the official JS
importer (ipfs-unixfs-importer 17.1.1), the reference kubo follows.

Profiles:
- "classic": kubo defaults, 256 KiB chunks, at most 174 links per node. CIDv0 uses dag-pb leaves,
  CIDv1 raw leaves.
- "v1-2025": the unixfs-v1-2025 profile, 1 MiB chunks, 1024 links, raw leaves, CIDv1 only.

Directories large enough to be HAMT-sharded by IPFS are refused rather than given a wrong CID.

The reverse direction serves checks of content a gateway returns: `parse_cid` reads a CID,
`directory_links` the entries of a folder's raw dag-pb block, and `content_matches` whether bytes are
the file a CID names. Only sha2-256 CIDs (all that `ipfs add` and Pinata produce) are read.
"""

import base64
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

FileSource = bytes | bytearray | memoryview | BinaryIO
DirectoryEntry = bytes | str | os.PathLike[str]
Blocks = dict[str, bytes] | None  # when a dict: receives every block of the DAG, by CID


@dataclass(frozen=True)
class _Profile:
    chunk_size: int
    max_links: int


PROFILES = {
    "classic": _Profile(chunk_size=262_144, max_links=174),
    "v1-2025": _Profile(chunk_size=1_048_576, max_links=1024),
}

_CODEC_RAW = 0x55
_CODEC_DAG_PB = 0x70
_UNIXFS_DIRECTORY = 1
_UNIXFS_FILE = 2
_UNIXFS_HAMT_SHARD = 5
_SHA2_256 = 0x12
# IPFS switches a directory to a HAMT shard at this size; we only build flat directories.
_SHARD_THRESHOLD_BYTES = 262_144
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True)
class DagNode:
    """Root of an imported file or directory.

    dag_size is the cumulative size of every block in the DAG (what a parent link's Tsize and
    Pinata's PinSize report); content_size is the number of file bytes it holds.
    """

    cid: str
    dag_size: int
    content_size: int


class _Node(NamedTuple):
    cid: bytes
    dag_size: int
    content_size: int


def file_dag(source: FileSource, cid_version: int = 1, profile: str = "classic", blocks: Blocks = None) -> DagNode:
    """Import a byte string or binary file object (read chunk by chunk) and describe its root."""
    return _public(_import_file(source, cid_version, profile, blocks))


def file_cid(source: FileSource, cid_version: int = 1, profile: str = "classic") -> str:
    """The CID `ipfs add` gives these bytes, e.g. `file_cid(open(path, "rb"))`."""
    return file_dag(source, cid_version, profile).cid


def directory_dag(
    files: Mapping[str, DirectoryEntry], cid_version: int = 1, profile: str = "classic", blocks: Blocks = None
) -> DagNode:
    """Import files keyed by relative path under one top-level folder; describe that folder.

    Values are file contents (bytes) or the filesystem path (str / PathLike) of a file to read.
    """
    _settings(cid_version, profile)
    [(folder_name, folder)] = _path_tree(files).items()
    return _public(_import_directory(folder, folder_name, cid_version, profile, blocks))


def directory_cid(files: Mapping[str, DirectoryEntry], cid_version: int = 1, profile: str = "classic") -> str:
    """The CID of the top-level folder, as `ipfs add -r` or a multi-file pinFileToIPFS gives it."""
    return directory_dag(files, cid_version, profile).cid


@dataclass(frozen=True)
class Cid:
    """A parsed CID: version, codec (0x70 dag-pb, 0x55 raw) and the sha2-256 digest of its block."""

    version: int
    codec: int
    digest: bytes

    @property
    def binary(self) -> bytes:
        multihash = bytes([_SHA2_256, len(self.digest)]) + self.digest
        return multihash if self.version == 0 else b"\x01" + _varint(self.codec) + multihash

    def of_block(self, block: bytes) -> str:
        """The CID `block` really has, in this CID's version and codec (to name what a gateway served)."""
        return _cid_text(_cid(block, self.codec, self.version))


def parse_cid(text: str) -> Cid:
    """A CIDv0 (`Qm...`) or a base32 CIDv1 (`b...`) of a sha2-256 multihash, in its canonical spelling;
    ValueError naming what is wrong otherwise."""
    if not isinstance(text, str) or not text.isalnum():
        raise ValueError(f"{text!r} is not a CID")
    try:
        if text.startswith("Qm"):
            version, codec, multihash = 0, _CODEC_DAG_PB, _base58btc_decode(text)
        elif text.startswith("b"):
            body = text[1:].upper()
            binary = base64.b32decode(body + "=" * (-len(body) % 8))
            version, position = _read_varint(binary, 0)
            codec, position = _read_varint(binary, position)
            multihash = binary[position:]
        else:
            raise ValueError("it is neither a CIDv0 (Qm...) nor a base32 CIDv1 (b...)")
    except ValueError as error:  # binascii.Error is a ValueError
        raise ValueError(f"{text!r} is not a CID: {error}") from None
    if codec not in (_CODEC_DAG_PB, _CODEC_RAW) or version not in (0, 1):
        raise ValueError(f"{text!r} is CIDv{version} of codec 0x{codec:x}; only dag-pb and raw CIDs are read")
    if multihash[:2] != bytes([_SHA2_256, 32]) or len(multihash) != 34:
        raise ValueError(f"{text!r} does not hold a sha2-256 multihash")
    cid = Cid(version, codec, multihash[2:])
    if _cid_text(cid.binary) != text:  # e.g. stray bits at the end of the base32 text
        raise ValueError(f"{text!r} is not a CID in canonical form (expected {_cid_text(cid.binary)})")
    return cid


def directory_links(block: bytes) -> dict[str, str]:
    """The entries (name -> CID) of a folder, from its raw dag-pb block; ValueError when the block is not
    a plain UnixFS folder (a file, a HAMT-sharded folder, not dag-pb)."""
    links, data = _parse_dag_pb(block)
    kind = dict(_pb_fields(data)).get(1)
    if kind == _UNIXFS_HAMT_SHARD:
        raise ValueError("the folder is HAMT-sharded, which is not supported")
    if kind != _UNIXFS_DIRECTORY:
        raise ValueError(f"the block is not a folder (UnixFS type {kind})")
    entries: dict[str, str] = {}
    for cid, name, _ in links:
        if name in entries:
            raise ValueError(f"the folder names {name!r} twice")
        entries[name] = _cid_text(cid)
    return entries


def content_matches(cid: str, data: bytes) -> bool:
    """Whether `data` is the file `cid` names: a raw CID's digest is the sha256 of the bytes; a dag-pb CID
    is what importing them gives (CIDv0: the classic profile; CIDv1: either profile)."""
    parsed = parse_cid(cid)
    if parsed.codec == _CODEC_RAW:
        return hashlib.sha256(data).digest() == parsed.digest
    imports = [(0, "classic")] if parsed.version == 0 else [(1, profile) for profile in PROFILES]
    return any(_import_file(data, version, profile).cid == parsed.binary for version, profile in imports)


def _settings(cid_version: int, profile: str) -> _Profile:
    if cid_version not in (0, 1):
        raise ValueError(f"cid_version must be 0 or 1, got {cid_version!r}")
    if profile not in PROFILES:
        raise ValueError(f"unknown CID profile {profile!r}; expected one of {sorted(PROFILES)}")
    if profile == "v1-2025" and cid_version != 1:
        raise ValueError(f"profile 'v1-2025' only produces CIDv1, got cid_version={cid_version!r}")
    return PROFILES[profile]


def _import_file(source: FileSource, cid_version: int, profile: str, blocks: Blocks = None) -> _Node:
    settings = _settings(cid_version, profile)
    leaves = [_leaf(chunk, cid_version, blocks) for chunk in _chunks(source, settings.chunk_size)]
    if len(leaves) == 1:
        return leaves[0]
    # Balanced layout: group each layer into parents of up to max_links until one root remains.
    layer = leaves
    while True:
        layer = [
            _file_parent(layer[start : start + settings.max_links], cid_version, blocks)
            for start in range(0, len(layer), settings.max_links)
        ]
        if len(layer) == 1:
            return layer[0]


def _chunks(source: FileSource, chunk_size: int) -> Iterator[bytes]:
    """Fixed-size chunks; an empty input is one empty chunk."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = memoryview(source).cast("B")
        yield bytes(data[:chunk_size])
        for start in range(chunk_size, len(data), chunk_size):
            yield bytes(data[start : start + chunk_size])
        return
    if not hasattr(source, "read"):
        raise TypeError(f"source must be bytes or a binary file object, got {type(source).__name__}")
    first = True
    while True:
        chunk = _read_full(source, chunk_size)
        if chunk or first:
            yield chunk
        if len(chunk) < chunk_size:
            return
        first = False


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Read exactly `size` bytes unless the stream ends: pipes and sockets return short reads,
    and chunk boundaries must not depend on them."""
    parts = []
    missing = size
    while missing:
        part = stream.read(missing)
        if isinstance(part, str):
            raise TypeError("source file object must be opened in binary mode ('rb'), it returned str")
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _leaf(chunk: bytes, cid_version: int, blocks: Blocks) -> _Node:
    if cid_version == 1:
        return _Node(_kept(blocks, _cid(chunk, _CODEC_RAW, 1), chunk), len(chunk), len(chunk))
    block = _dag_pb([], _unixfs(_UNIXFS_FILE, data=chunk, filesize=len(chunk)))
    return _Node(_kept(blocks, _cid(block, _CODEC_DAG_PB, 0), block), len(block), len(chunk))


def _file_parent(children: list[_Node], cid_version: int, blocks: Blocks) -> _Node:
    sizes = [child.content_size for child in children]
    data = _unixfs(_UNIXFS_FILE, filesize=sum(sizes), blocksizes=sizes)
    block = _dag_pb([(child.cid, "", child.dag_size) for child in children], data)
    return _Node(
        _kept(blocks, _cid(block, _CODEC_DAG_PB, cid_version), block),
        len(block) + sum(child.dag_size for child in children),
        sum(sizes),
    )


def _kept(blocks: Blocks, cid: bytes, block: bytes) -> bytes:
    """`cid`, after recording its block when the caller collects blocks."""
    if blocks is not None:
        blocks[_cid_text(cid)] = block
    return cid


def _path_tree(files: Mapping[str, DirectoryEntry]) -> dict:
    """Nest 'folder/sub/name' keys into dicts; leaves keep the caller's value."""
    if not files:
        raise ValueError("directory needs at least one file, got an empty mapping")
    tree: dict = {}
    for path, content in files.items():
        if not isinstance(path, str):
            raise TypeError(f"directory paths must be str, got {path!r}")
        if path.startswith("/") or "\\" in path:
            raise ValueError(f"directory path {path!r} must be relative and use '/' separators")
        segments = path.split("/")
        if any(segment in ("", ".", "..") for segment in segments):
            raise ValueError(f"directory path {path!r} has an empty, '.' or '..' segment")
        if len(segments) < 2:
            raise ValueError(f"directory path {path!r} must be inside a top-level folder, e.g. 'proof/...'")
        if tree and segments[0] not in tree:
            raise ValueError(f"all paths must share one top-level folder: {path!r} is not under {next(iter(tree))!r}")
        folder = tree
        for depth, segment in enumerate(segments[:-1]):
            folder = folder.setdefault(segment, {})
            if not isinstance(folder, dict):
                raise ValueError(f"{'/'.join(segments[: depth + 1])!r} is both a file and a folder")
        if segments[-1] in folder:
            raise ValueError(f"{path!r} is both a file and a folder")
        folder[segments[-1]] = content
    return tree


def _import_directory(folder: dict, path: str, cid_version: int, profile: str, blocks: Blocks) -> _Node:
    links = []
    content_size = 0
    for name in sorted(folder, key=lambda name: name.encode("utf-8")):
        entry = folder[name]
        child_path = f"{path}/{name}"
        if isinstance(entry, dict):
            child = _import_directory(entry, child_path, cid_version, profile, blocks)
        else:
            child = _import_directory_file(entry, child_path, cid_version, profile, blocks)
        links.append((child.cid, name, child.dag_size))
        content_size += child.content_size
    block = _dag_pb(links, _unixfs(_UNIXFS_DIRECTORY))
    if len(block) >= _SHARD_THRESHOLD_BYTES:
        raise ValueError(f"folder {path!r} has {len(links)} entries: IPFS would HAMT-shard it, which is not supported")
    return _Node(
        _kept(blocks, _cid(block, _CODEC_DAG_PB, cid_version), block),
        len(block) + sum(tsize for _, _, tsize in links),
        content_size,
    )


def _import_directory_file(entry: DirectoryEntry, path: str, cid_version: int, profile: str, blocks: Blocks) -> _Node:
    if isinstance(entry, bytes | bytearray | memoryview):
        return _import_file(entry, cid_version, profile, blocks)
    if isinstance(entry, str | os.PathLike):
        with open(entry, "rb") as stream:
            return _import_file(stream, cid_version, profile, blocks)
    raise TypeError(f"content for {path!r} must be bytes or a file path, got {type(entry).__name__}")


def _unixfs(kind: int, data: bytes = b"", filesize: int | None = None, blocksizes: Sequence[int] = ()) -> bytes:
    """UnixFS Data message: Type=1, Data=2, filesize=3, blocksizes=4 (repeated, unpacked)."""
    out = _pb_varint(1, kind)
    if data:
        out += _pb_bytes(2, data)
    if filesize is not None:
        out += _pb_varint(3, filesize)
    return out + b"".join(_pb_varint(4, size) for size in blocksizes)


def _dag_pb(links: list[tuple[bytes, str, int]], data: bytes) -> bytes:
    """dag-pb PBNode, canonical form: Links (field 2) before Data (field 1); a link is
    Hash=1, Name=2, Tsize=3 and an empty Name is still written."""
    encoded_links = b"".join(
        _pb_bytes(2, _pb_bytes(1, cid) + _pb_bytes(2, name.encode("utf-8")) + _pb_varint(3, tsize))
        for cid, name, tsize in links
    )
    return encoded_links + _pb_bytes(1, data)


def _cid(block: bytes, codec: int, cid_version: int) -> bytes:
    multihash = b"\x12\x20" + hashlib.sha256(block).digest()  # sha2-256, 32-byte digest
    if cid_version == 0:
        return multihash
    return b"\x01" + _varint(codec) + multihash


def _public(node: _Node) -> DagNode:
    return DagNode(_cid_text(node.cid), node.dag_size, node.content_size)


def _cid_text(cid: bytes) -> str:
    if cid[0] == _SHA2_256:  # a bare sha2-256 multihash is CIDv0
        return _base58btc(cid)
    return "b" + base64.b32encode(cid).decode("ascii").lower().rstrip("=")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _pb_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _pb_bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    """The unsigned varint at `position`, and the position after it."""
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("a varint is truncated or too long")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _pb_fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of a protobuf message of varint and length-delimited fields."""
    position = 0
    while position < len(message):
        key, position = _read_varint(message, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _read_varint(message, position)
            yield field, value
        elif wire_type == 2:
            length, position = _read_varint(message, position)
            if position + length > len(message):
                raise ValueError(f"field {field} is truncated")
            yield field, message[position : position + length]
            position += length
        else:
            raise ValueError(f"field {field} has protobuf wire type {wire_type}, which dag-pb does not use")


def _parse_dag_pb(block: bytes) -> tuple[list[tuple[bytes, str, int]], bytes]:
    """A dag-pb PBNode: its links (Hash, Name, Tsize), then its Data (the inverse of `_dag_pb`)."""
    links, data = [], None
    for field, value in _pb_fields(block):
        if field == 2 and isinstance(value, bytes) and data is None:  # Links come before Data
            link = dict(_pb_fields(value))
            cid, name, tsize = link.get(1), link.get(2, b""), link.get(3, 0)
            if not isinstance(cid, bytes) or not isinstance(name, bytes) or not isinstance(tsize, int):
                raise ValueError("a link lacks its Hash or has fields of the wrong type")
            links.append((cid, name.decode("utf-8"), tsize))
        elif field == 1 and isinstance(value, bytes) and data is None:
            data = value
        else:
            raise ValueError(f"the block is not a dag-pb node (unexpected field {field})")
    if data is None:
        raise ValueError("the dag-pb node has no UnixFS Data")
    return links, data


def _base58btc_decode(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _BASE58_ALPHABET.find(char)
        if digit < 0:
            raise ValueError(f"{char!r} is not a base58btc digit")
        number = number * 58 + digit
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * leading_zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def _base58btc(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_BASE58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(digits))
