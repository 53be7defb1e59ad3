"""Pin a day's proofs to IPFS as directories, checking every CID against the local computation.

A day's proofs go up in a few directory pins (at most BATCH_FILES files each, well below the size at
which IPFS would shard a directory), so a day costs a few Pinata requests, not one per plot. Each
proof's own file CID is computed locally too: the file is reachable both as ipfs://<file CID> and as
ipfs://<directory CID>/<name>. A CID Pinata returns that differs from ours stops the pin, naming both.

Reading a proof back (`fetch_verified`) trusts no gateway: every folder block on the way and the file
itself are checked against their CIDs here.
"""

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from microcrop_assets.proofs.cid import content_matches, directory_cid, directory_links, file_cid, parse_cid
from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.resources.pinata import Pin, PinataResource

CID_VERSION = 1  # sent explicitly: Pinata's default is undocumented
BATCH_FILES = 1000
PROOF_PREFIX = "proofs"


class CidMismatch(RuntimeError):
    """Pinata computed another CID than we did for the same bytes."""


class ProofReferenceError(ValueError):
    """What a gateway served is not what the CID names; the message names the reference and what differs."""


@dataclass(frozen=True)
class ProofFile:
    assessment_id: str
    data: bytes
    cid: str  # the file's own CID

    @property
    def name(self) -> str:
        return f"{self.assessment_id}.json"

    @property
    def object_key(self) -> str:
        """Object-store copy, keyed by content."""
        return f"{PROOF_PREFIX}/{self.cid}.json"


@dataclass(frozen=True)
class VerifiedFile:
    cid: str  # the file's own CID, checked against its bytes
    data: bytes


@dataclass(frozen=True)
class ProofDirectory:
    folder: str
    cid: str
    files: tuple[ProofFile, ...]

    def uri(self, proof: ProofFile) -> str:
        return f"ipfs://{self.cid}/{proof.name}"

    def entries(self) -> dict[str, bytes]:
        return {f"{self.folder}/{proof.name}": proof.data for proof in self.files}


def proof_file(assessment_id: str, data: bytes) -> ProofFile:
    return ProofFile(assessment_id, data, file_cid(data, cid_version=CID_VERSION))


def proof_directories(day: dt.date, proofs: Sequence[ProofFile]) -> list[ProofDirectory]:
    """The day's proofs in directories of at most BATCH_FILES, sorted by assessment id, CIDs computed locally."""
    ordered = sorted(proofs, key=lambda proof: proof.assessment_id)
    directories = []
    for number, start in enumerate(range(0, len(ordered), BATCH_FILES), start=1):
        batch = tuple(ordered[start : start + BATCH_FILES])
        folder = f"microcrop-proofs-{day.isoformat()}" + (f"-{number}" if len(ordered) > BATCH_FILES else "")
        entries = {f"{folder}/{proof.name}": proof.data for proof in batch}
        directories.append(ProofDirectory(folder, directory_cid(entries, cid_version=CID_VERSION), batch))
    return directories


def pin_directory(pinata: PinataResource, directory: ProofDirectory) -> Pin:
    """Pin one directory; the CID Pinata answers must be the one computed here."""
    pin = pinata.pin_directory(
        directory.entries(),
        cid_version=CID_VERSION,
        name=directory.folder,
        keyvalues={"kind": "microcrop-damage-proofs", "proofs": len(directory.files)},
    )
    if pin.cid != directory.cid:
        raise CidMismatch(
            f"Pinata returned CID {pin.cid} for {directory.folder}, but its files give {directory.cid} locally;"
            " nothing was recorded"
        )
    return pin


def store_copy(store: ObjectStoreResource, proof: ProofFile) -> str:
    """Copy a proof to object storage under its CID; an existing copy with the same sha256 is kept."""
    key = proof.object_key
    sha = hashlib.sha256(proof.data).hexdigest()
    if not store.exists(key) or store.head(key).sha256 != sha:
        store.put(key, proof.data, content_type="application/json")
    return key


def fetch_verified(pinata: PinataResource, reference: str) -> VerifiedFile:
    """The file `CID` or `ipfs://CID[/path]` names, trusting nothing the gateway says.

    Along the path, each folder's raw block must hash to the folder's CID and gives the CID of the next
    entry; the file's bytes must then be what its CID names. Any difference raises ProofReferenceError."""
    cid, _, path = reference.removeprefix("ipfs://").partition("/")
    for name in path.split("/") if path else ():
        folder = parse_cid(cid)
        block = pinata.fetch_block(cid)
        if hashlib.sha256(block).digest() != folder.digest:
            served = folder.of_block(block)
            raise ProofReferenceError(
                f"{reference}: the gateway served another block for folder {cid} (its CID is {served})"
            )
        try:
            entries = directory_links(block)
        except ValueError as error:
            raise ProofReferenceError(f"{reference}: folder {cid}: {error}") from None
        if name not in entries:
            raise ProofReferenceError(f"{reference}: folder {cid} has no entry {name!r}")
        cid = entries[name]
    data = pinata.fetch(cid)
    check_content(reference, cid, data)
    return VerifiedFile(cid, data)


def check_content(reference: str, cid: str, data: bytes) -> None:
    """ProofReferenceError unless `data` is the file `cid` names (read for `reference`)."""
    if not content_matches(cid, data):
        actual = file_cid(data, cid_version=parse_cid(cid).version)
        raise ProofReferenceError(f"{reference}: the bytes read for {cid} are another file (its CID is {actual})")
