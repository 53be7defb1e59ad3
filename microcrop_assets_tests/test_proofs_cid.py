import io
import re
from pathlib import Path

import pytest

from microcrop_assets.proofs.cid import DagNode, directory_cid, directory_dag, file_cid, file_dag

pytestmark = pytest.mark.unit

VECTORS_FILE = Path(__file__).parent / "data" / "cid_vectors.txt"
SECTION_SETTINGS = {
    "kubo-default v0": (0, "classic"),
    "kubo --cid-version=1": (1, "classic"),
    "unixfs-v1-2025": (1, "v1-2025"),
}
MIB = 1_048_576


class PatternFile(io.RawIOBase):
    """Read-only file whose byte i is i % modulus, generated per read so the 50 MiB vector never
    sits in memory. Reads return at most max_read bytes, like a pipe."""

    def __init__(self, length: int, modulus: int, max_read: int = MIB):
        self._length = length
        self._modulus = modulus
        self._max_read = max_read
        self._position = 0
        self._period = bytes(range(modulus)) * (max_read // modulus + 2)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._length - self._position, self._max_read)
        phase = self._position % self._modulus
        buffer[:count] = self._period[phase : phase + count]
        self._position += count
        return count


def pattern_bytes(length: int, modulus: int) -> bytes:
    return (bytes(range(modulus)) * (length // modulus + 1))[:length]


def vector_source(name: str):
    if name == "empty":
        return b""
    if match := re.fullmatch(r"zeros_(\d+)", name):
        return bytes(int(match[1]))
    if match := re.fullmatch(r"pattern_(\d+)MiB\(i%(\d+)\)", name):
        return PatternFile(int(match[1]) * MIB, int(match[2]))
    return name.replace("\\n", "\n").encode()


def load_vectors() -> list:
    vectors = []
    section = None
    for line in VECTORS_FILE.read_text().splitlines():
        if line.startswith("## "):
            section = next(key for key in SECTION_SETTINGS if line[3:].startswith(key))
        elif line and not line.startswith("#"):
            name, length, cid, dag_size = line.split("\t")
            vectors.append(pytest.param(section, name, int(length), cid, int(dag_size), id=f"{section}:{name}"))
    return vectors


FILE_VECTORS = load_vectors()


def js_importer_cid(section: str, name: str) -> str:
    """The CID the JS importer gave input `name` in `section` of the vector file: the independent
    oracle for pins (the sandbox computes its CIDs with our own proofs.cid)."""
    return next(v.values[3] for v in FILE_VECTORS if v.values[:2] == (section, name))


def test_vector_file_covers_every_section():
    sections = [vector.values[0] for vector in FILE_VECTORS]
    assert {section: sections.count(section) for section in SECTION_SETTINGS} == dict.fromkeys(SECTION_SETTINGS, 8)


@pytest.mark.parametrize(("section", "name", "length", "cid", "dag_size"), FILE_VECTORS)
def test_file_dag_matches_js_importer_vectors(section, name, length, cid, dag_size):
    cid_version, profile = SECTION_SETTINGS[section]
    assert file_dag(vector_source(name), cid_version, profile) == DagNode(cid, dag_size, length)


def test_file_cid_of_open_file_defaults_to_v1_classic(tmp_path):
    path = tmp_path / "scene.bin"
    path.write_bytes(bytes(262_145))
    with open(path, "rb") as stream:
        assert file_cid(stream) == "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki"
    with open(path, "rb") as stream:
        assert file_cid(stream, 0, "classic") == "QmbVuw4C4vcmVKqxoWtgDVobvcHrSn51qsmQmyxjk4sB2Q"


@pytest.mark.parametrize(("cid_version", "profile"), list(SECTION_SETTINGS.values()))
def test_short_reads_do_not_move_chunk_boundaries(cid_version, profile):
    length = 2 * MIB + 12_345
    expected = file_cid(pattern_bytes(length, 251), cid_version, profile)
    assert file_cid(PatternFile(length, 251, max_read=1000), cid_version, profile) == expected


def test_text_mode_file_is_rejected(tmp_path):
    path = tmp_path / "assessment.json"
    path.write_text('{"a":1}')
    with open(path) as stream, pytest.raises(TypeError, match="binary mode"):
        file_cid(stream)


def test_non_bytes_source_is_rejected():
    with pytest.raises(TypeError, match="got str"):
        file_cid('{"a":1}')


BAD_PARAMETERS = [
    (0, "v1-2025", r"'v1-2025' only produces CIDv1, got cid_version=0"),
    (2, "classic", "cid_version must be 0 or 1, got 2"),
    (1, "fast", "unknown CID profile 'fast'"),
]


@pytest.mark.parametrize(("cid_version", "profile", "message"), BAD_PARAMETERS)
def test_bad_parameters_are_rejected_for_files(cid_version, profile, message):
    with pytest.raises(ValueError, match=message):
        file_cid(b"hello world\n", cid_version, profile)


@pytest.mark.parametrize(("cid_version", "profile", "message"), BAD_PARAMETERS)
def test_bad_parameters_are_rejected_for_directories(cid_version, profile, message):
    with pytest.raises(ValueError, match=message):
        directory_cid({"report/a.txt": b"hello world\n"}, cid_version, profile)


# A claim's proof bundle with a nested folder, an empty file, names that sort differently by byte
# order ("Readme.txt" < "assessment.json", "inputs" < "inputs.json") and a file spanning chunks.
PROOF_BUNDLE = {
    "proof/assessment.json": b'{"plot":"KE-001","ndvi":0.41}\n',
    "proof/Readme.txt": b"MicroCrop proof bundle\n",
    "proof/empty.txt": b"",
    "proof/inputs/ndvi.json": b"[0.41,0.39]\n",
    "proof/inputs/scene.bin": pattern_bytes(1_500_000, 251),
    "proof/inputs.json": b'["ndvi.json","scene.bin"]\n',
}
INPUTS_FOLDER = {
    path.removeprefix("proof/"): content for path, content in PROOF_BUNDLE.items() if path.startswith("proof/inputs/")
}
SINGLE_FILE_REPORT = {"report/a.txt": b"hello world\n"}

# Produced by ipfs-unixfs-importer 17.1.1 (entries imported with these paths, importer defaults;
# v0: cidVersion 0 + rawLeaves false, v1: cidVersion 1 + rawLeaves true, profile 'unixfs-v1-2025').
DIRECTORY_VECTORS = [
    ("bundle", PROOF_BUNDLE, 0, "classic", "QmcodhwqkX3LSFUJetVV8vhzc19FzmNsaq8JtqyhHkP313", 1_500_884),
    (
        "bundle",
        PROOF_BUNDLE,
        1,
        "classic",
        "bafybeig3jgvu32t6gtahes7aujcvjenxkpwdaukhtuuxsbfyzgz373srfq",
        1_500_788,
    ),
    (
        "bundle",
        PROOF_BUNDLE,
        1,
        "v1-2025",
        "bafybeig3d6u2j6zj5wxnam737kqdmbw3lw3ofwh73b7axfeg4wgblzuqca",
        1_500_588,
    ),
    ("inputs", INPUTS_FOLDER, 0, "classic", "QmSY2ppsJwFdC926rp2GWrpNffVBrik9uZomyjq83GLkNq", 1_500_508),
    (
        "inputs",
        INPUTS_FOLDER,
        1,
        "classic",
        "bafybeihf5gqgtmgxkpw2smslhrswvx52exarks2esrf7zby6wg5juouote",
        1_500_432,
    ),
    (
        "inputs",
        INPUTS_FOLDER,
        1,
        "v1-2025",
        "bafybeiazkgv5mma6vwy4vkjnegk42lsbssypjoidbckr5xk3qvppwgqfwu",
        1_500_232,
    ),
    ("report", SINGLE_FILE_REPORT, 0, "classic", "QmVa4SiL7NizBsHzzudfME4xFN2PgbMCPiJqzECLBshKNx", 71),
    (
        "report",
        SINGLE_FILE_REPORT,
        1,
        "classic",
        "bafybeic73sfuix6mofag267yar3a26ysxpawlkomslakre32l4hpsjcabe",
        65,
    ),
]


@pytest.mark.parametrize(
    ("files", "cid_version", "profile", "cid", "dag_size"),
    [pytest.param(*vector[1:], id=f"{vector[0]}-v{vector[2]}-{vector[3]}") for vector in DIRECTORY_VECTORS],
)
def test_directory_dag_matches_js_importer_vectors(files, cid_version, profile, cid, dag_size):
    content_size = sum(len(content) for content in files.values())
    assert directory_dag(files, cid_version, profile) == DagNode(cid, dag_size, content_size)
    assert directory_cid(files, cid_version, profile) == cid


def test_directory_cid_does_not_depend_on_mapping_order():
    reordered = dict(reversed(PROOF_BUNDLE.items()))
    assert directory_cid(reordered) == "bafybeig3jgvu32t6gtahes7aujcvjenxkpwdaukhtuuxsbfyzgz373srfq"


def test_directory_reads_files_from_paths(tmp_path):
    on_disk = {}
    for index, (relative, content) in enumerate(PROOF_BUNDLE.items()):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        # Mix str and Path values: both name a file to read.
        on_disk[relative] = str(path) if index % 2 else path
    assert directory_cid(on_disk, 0) == "QmcodhwqkX3LSFUJetVV8vhzc19FzmNsaq8JtqyhHkP313"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "empty mapping"),
        ({"/proof/a.txt": b""}, "'/proof/a.txt' must be relative"),
        ({"proof\\a.txt": b""}, r"'proof\\\\a.txt' must be relative and use '/'"),
        ({"proof/../a.txt": b""}, r"'proof/\.\./a.txt' has an empty, '\.' or '\.\.' segment"),
        ({"proof/./a.txt": b""}, r"'proof/\./a.txt' has an empty"),
        ({"proof//a.txt": b""}, "'proof//a.txt' has an empty"),
        ({"proof/": b""}, "'proof/' has an empty"),
        ({"a.txt": b""}, "'a.txt' must be inside a top-level folder"),
        ({"proof/a.txt": b"", "evidence/b.txt": b""}, "'evidence/b.txt' is not under 'proof'"),
        ({"proof/a": b"", "proof/a/b.txt": b""}, "'proof/a' is both a file and a folder"),
        ({"proof/a/b.txt": b"", "proof/a": b""}, "'proof/a' is both a file and a folder"),
    ],
)
def test_bad_directory_paths_are_rejected(files, message):
    with pytest.raises(ValueError, match=message):
        directory_cid(files)


def test_bad_directory_content_is_rejected():
    with pytest.raises(TypeError, match="'proof/a.txt' must be bytes or a file path, got int"):
        directory_cid({"proof/a.txt": 12})


def test_directory_that_ipfs_would_shard_is_rejected():
    # ~2,000 links of ~150 bytes exceed the 256 KiB point where IPFS switches to a HAMT directory.
    files = {f"proof/{index:04d}-{'x' * 100}.json": b"" for index in range(2000)}
    with pytest.raises(ValueError, match="'proof' has 2000 entries: IPFS would HAMT-shard it"):
        directory_cid(files)
