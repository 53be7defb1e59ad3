"""Bad plots files, generated (issue 17 item 3): whatever a plots GeoJSON holds, importing it either
succeeds or is refused with a PlotsFileError naming the source and, one line each, the plot, field
and value; never another exception, and a refused import leaves the plots table byte for byte as it
was.

Each example is the demo plots file with one thing changed (a field, a coordinate, the geometry,
the encoding, ...), so most examples get past the checks of the file as a whole to one field's.
"""

import copy
import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from microcrop_assets.cli import main
from microcrop_assets.defs.plots.assets import DEMO_PLOTS, PlotsConfig, plots
from microcrop_assets.defs.plots.registry import REQUIRED, PlotsFileError, canonical_json, parse_plots, store_plots
from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.science.policy import CROPS, DEFAULT_TERMS, GROWTH_STAGES

SOURCE = "s3://microcrop/uploads/plots.geojson"  # any name: every refusal must name it
DEMO = json.loads(DEMO_PLOTS.read_bytes())
DEMO["features"] = DEMO["features"][:4]  # four plots parse in a third of the time of twelve, and show as much
DEMO_BYTES = json.dumps(DEMO, indent=1).encode()
FEATURES = len(DEMO["features"])
BIGINT = 2**63 - 1  # the plots table's money columns
NAMED = {*REQUIRED, "max_payout_usdc", "policy_terms", "properties", "geometry", "type", "coordinates", "bbox"}
PLOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()  # the member is removed


@dataclass(frozen=True)
class Raw:
    """JSON text written into the file as is: numbers json.dumps cannot write (1e999999999, 1.0000001)."""

    number: str

    def text(self) -> str:
        return self.number


@dataclass(frozen=True)
class Nested:
    """`depth` arrays (or objects) nested around a 1."""

    depth: int
    bracket: str

    def text(self) -> str:
        if self.bracket == "[":
            return "[" * self.depth + "1" + "]" * self.depth
        return '{"a":' * self.depth + "1" + "}" * self.depth


def to_json(document: Any) -> bytes:
    """`document` as a file: json.dumps, with Raw and Nested values put in as the text they stand for."""
    texts = []

    def marked(value):
        if isinstance(value, Raw | Nested):
            texts.append(value.text())
            return f"\x00raw{len(texts) - 1}\x00"
        if isinstance(value, dict):
            return {key: marked(item) for key, item in value.items()}
        if isinstance(value, list):
            return [marked(item) for item in value]
        return value

    text = json.dumps(marked(document))
    for number, raw in enumerate(texts):
        text = text.replace(json.dumps(f"\x00raw{number}\x00"), raw, 1)
    return text.encode()


@dataclass(frozen=True)
class Change:
    """The demo file with the member at `path` set to `value` (MISSING: removed; path (): the whole file)."""

    path: tuple
    value: Any

    def data(self) -> bytes:
        if not self.path:
            return to_json(self.value)
        document = copy.deepcopy(DEMO)
        *parents, last = self.path
        target = document
        for key in parents:
            target = target[key]
        if self.value is MISSING:
            target.pop(last, None)
        else:
            target[last] = self.value
        return to_json(document)


@dataclass(frozen=True)
class Encoded:
    """The demo file in another encoding (or UTF-8 with a BOM), the first policy id holding `policy_id`."""

    encoding: str
    policy_id: str

    def data(self) -> bytes:
        document = copy.deepcopy(DEMO)
        document["features"][0]["properties"]["policy_id"] = self.policy_id
        return json.dumps(document, ensure_ascii=False).encode(self.encoding, "replace")


@dataclass(frozen=True)
class Cut:
    """The demo file cut short after `size` bytes (an interrupted upload)."""

    size: int

    def data(self) -> bytes:
        return DEMO_BYTES[: self.size]


@dataclass(frozen=True)
class Junk:
    content: bytes

    def data(self) -> bytes:
        return self.content


def ring(index: int) -> list[list[float]]:
    return DEMO["features"][index]["geometry"]["coordinates"][0]


def closed(positions: list[list[float]]) -> list[list[float]]:
    return [*positions, positions[0]] if positions else []


def near(index: int, offsets: list[tuple[float, float]]) -> list[list[float]]:
    lon, lat = ring(index)[0]
    return closed([[lon + dx, lat + dy] for dx, dy in offsets])


def square(index: int, side: float) -> list[list[float]]:
    return near(index, [(0, 0), (side, 0), (side, side), (0, side)])


def round_ring(index: int, vertices: int) -> list[list[float]]:
    lon, lat = ring(index)[0]
    angles = [2 * math.pi * i / (vertices - 1) for i in range(vertices - 1)]
    return closed([[lon + 0.0005 * math.cos(a), lat + 0.0005 * math.sin(a)] for a in angles])


def noise(size: int) -> str:
    """`size` hex digits without repetitions (PostgreSQL compresses a long value before indexing it: a
    long id of one letter fits any index)."""
    return "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(size // 64 + 1))[:size]


FEATURE = st.integers(0, FEATURES - 1)
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=12),  # every code point, lone surrogates too
    st.sampled_from(["", " ", "\x00", "\n", "\r\n", "\u2028", "\u202e", "\ud800", "\ufeff", "١٠٠٠", '"', "\\", "[{"]),
    st.integers(60, 9000).map(noise),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,  # floats: NaN and Infinity too
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
EXPONENTS = st.integers(-(10**9), 10**9)  # far beyond a double's and the decimal context's range
MONEY = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: Raw(str(d))),  # as a JSON number
    st.decimals().map(str),  # as a string, NaN and Infinity too
    st.floats(),
    st.integers(),
    st.builds(lambda m, e: Raw(f"{m}e{e}"), st.integers(1, 999), EXPONENTS),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-999, 999), EXPONENTS),
    # a fraction of a micro-USDC, also beyond the 28 digits of the decimal context
    st.builds(lambda units, places: f"{units}.{'0' * (places - 1)}1", st.integers(0, 10**6), st.integers(7, 40)),
    st.integers(BIGINT // 10**6 - 2, BIGINT // 10**6 + 2).map(lambda n: f"{n}.775808"),  # around the BIGINT
    st.sampled_from(["1_000", " 750 ", "750.", ".5", "+750", "0x10", "-0", "0.0000001", "750\n"]),
    TEXT,
    JSON_VALUES,
)
DATES = st.one_of(
    st.dates().map(dt.date.isoformat),  # valid, about half of them reversing the season
    st.dates().map(lambda d: d.strftime("%d/%m/%Y")),
    st.dates().map(lambda d: d.strftime("%Y%m%d")),
    st.datetimes().map(dt.datetime.isoformat),
    st.sampled_from(["2025-02-30", "2025-13-01", "0000-01-01", "2025-W11-1", "2025-3-15", "2025-03-15\n"]),
    TEXT,
    JSON_VALUES,
)
IDS = st.one_of(
    TEXT,
    st.sampled_from([f["properties"]["plot_id"] for f in DEMO["features"]]),  # a duplicate plot id
    st.sampled_from([f["properties"]["plot_id"] + "\n" for f in DEMO["features"]]),
    JSON_VALUES,
    st.just(MISSING),
)
ADDRESSES = st.one_of(
    st.text("0123456789abcdefABCDEF", min_size=40, max_size=40).map(lambda digits: "0x" + digits),
    st.just(DEMO["features"][0]["properties"]["farmer_address"] + "\n"),
    TEXT,
    JSON_VALUES,
)
TERMS = st.one_of(
    JSON_VALUES,
    st.builds(lambda key, value: {key: value}, st.sampled_from([*DEFAULT_TERMS, "deductable"]), MONEY | JSON_VALUES),
    st.builds(lambda w, s: {"weights": {"weather": w, "satellite": s}}, MONEY, MONEY),
    st.builds(
        lambda name, trigger, exit_: {
            "layers": {name: {"peril": "drought", "index": "spi_3", "trigger": trigger, "exit": exit_}}
        },
        TEXT,
        MONEY,
        MONEY,
    ),
    st.builds(lambda key, value: {"spi": {key: value}}, st.sampled_from(list(DEFAULT_TERMS["spi"])), JSON_VALUES),
    st.builds(lambda key, value: {"satellite": {key: value}}, st.sampled_from(list(DEFAULT_TERMS["satellite"])), MONEY),
    st.dictionaries(st.sampled_from(GROWTH_STAGES), st.integers(-5, 10**30), min_size=5).map(
        lambda days: {"crop_calendar": days}
    ),
)
COORDINATES = st.one_of(
    st.floats(),
    st.integers(),
    st.builds(lambda m, e: Raw(f"{m}e{e}"), st.integers(-9, 9), EXPONENTS),
    st.integers(300, 400).map(lambda digits: Raw("9" * digits)),  # an integer no double holds
    TEXT,
    st.booleans(),
    st.none(),
)


def in_feature(tail: tuple, values) -> st.SearchStrategy[Change]:
    return st.builds(lambda index, value: Change(("features", index, *tail), value), FEATURE, values)


def in_geometry(make, *values) -> st.SearchStrategy[Change]:
    """The coordinates of one plot replaced by `make(index, *drawn values)`."""
    return st.builds(
        lambda index, *drawn: Change(("features", index, "geometry", "coordinates"), make(index, *drawn)),
        FEATURE,
        *values,
    )


OFFSETS = st.lists(st.tuples(st.floats(-0.002, 0.002), st.floats(-0.002, 0.002)), max_size=10)
POSITION = st.tuples(FEATURE, st.integers(0, 4))
GEOMETRY = st.one_of(
    in_feature(("geometry",), JSON_VALUES | st.just(MISSING)),
    in_feature(("geometry", "type"), st.sampled_from(["Point", "MultiPolygon", "polygon", "Feature"]) | JSON_VALUES),
    in_feature(("geometry", "coordinates"), st.sampled_from([[], [[]], [[[]]], [[[], [], [], []]]]) | JSON_VALUES),
    in_feature(("geometry", "bbox"), JSON_VALUES),  # a member beside type and coordinates
    st.builds(
        lambda at, axis, value: Change(("features", at[0], "geometry", "coordinates", 0, at[1], axis), value),
        POSITION,
        st.integers(0, 1),
        COORDINATES,
    ),
    st.builds(
        lambda at, position: Change(("features", at[0], "geometry", "coordinates", 0, at[1]), position),
        POSITION,
        st.lists(COORDINATES, max_size=4),
    ),
    st.builds(  # one position with a height
        lambda at, z: Change(("features", at[0], "geometry", "coordinates", 0, at[1]), [*ring(at[0])[at[1]], z]),
        POSITION,
        COORDINATES,
    ),
    in_geometry(lambda index, z: [[[*position, z] for position in ring(index)]], COORDINATES),  # all with heights
    in_geometry(lambda index, offsets: [near(index, offsets)], OFFSETS),  # self-intersecting, collinear, ...
    in_geometry(lambda index, offsets: [ring(index), near(index, offsets)], OFFSETS),  # a hole
    in_geometry(lambda index, side: [square(index, side)], st.floats(1e-12, 400)),  # tiny to far over 50 ha
    in_geometry(lambda index, vertices: [round_ring(index, vertices)], st.integers(10_001, 10_050)),
    in_feature(
        ("geometry",),
        st.sampled_from(
            [  # the whole world, a pole, the antimeridian
                {"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]},
                {"type": "Polygon", "coordinates": [[[0, 89.999], [120, 89.999], [-120, 89.999], [0, 89.999]]]},
                {"type": "Polygon", "coordinates": [[[179.999, 0], [-179.999, 0], [-179.999, 0.001], [179.999, 0]]]},
            ]
        ),
    ),
    st.builds(  # two overlapping (or touching, or apart) parts
        lambda index, shift: Change(
            ("features", index, "geometry"),
            {"type": "MultiPolygon", "coordinates": [[ring(index)], [[[x + shift, y] for x, y in ring(index)]]]},
        ),
        FEATURE,
        st.floats(-0.003, 0.003),
    ),
)
FIELDS = st.one_of(
    in_feature(("properties", "plot_id"), IDS),
    in_feature(("properties", "policy_id"), IDS),
    in_feature(("properties", "farmer_address"), ADDRESSES),
    in_feature(("properties", "crop"), st.sampled_from([*CROPS, "Maize", "maize ", "banana"]) | TEXT | JSON_VALUES),
    in_feature(("properties", "sowing_date"), DATES),
    in_feature(("properties", "season_end"), DATES),
    in_feature(("properties", "sum_insured_usdc"), MONEY),
    in_feature(("properties", "max_payout_usdc"), MONEY),
    in_feature(("properties", "policy_terms"), TERMS),
    st.builds(lambda index, key, value: Change(("features", index, "properties", key), value), FEATURE, TEXT, MONEY),
    st.builds(
        lambda index, key: Change(("features", index, "properties", key), MISSING), FEATURE, st.sampled_from(REQUIRED)
    ),
)
DOCUMENT = st.one_of(
    st.builds(Change, st.just(()), JSON_VALUES),  # any JSON where a FeatureCollection is expected
    st.builds(Change, st.just(("type",)), st.sampled_from(["Feature", "featurecollection"]) | JSON_VALUES),
    st.builds(Change, st.just(("features",)), JSON_VALUES | st.just(MISSING)),
    in_feature((), JSON_VALUES),
    in_feature(("type",), JSON_VALUES),
    in_feature(("properties",), JSON_VALUES | st.just(MISSING)),
    st.builds(
        lambda index, field, depth, bracket: Change(("features", index, "properties", field), Nested(depth, bracket)),
        FEATURE,
        st.sampled_from(["plot_id", "crop", "sum_insured_usdc", "policy_terms"]),
        st.integers(1, 40) | st.sampled_from([1_000, 100_000]),
        st.sampled_from("[{"),
    ),
    st.builds(Encoded, st.sampled_from(["utf-8-sig", "utf-16", "utf-16-be", "utf-32", "cp1252"]), TEXT),
    st.integers(0, len(DEMO_BYTES) - 1).map(Cut),
    st.binary(max_size=64).map(Junk),
)


def evenly(*groups) -> st.SearchStrategy:
    """One of `groups`, each as likely (st.one_of flattens nested choices: a group of many would dominate)."""
    return st.sampled_from(groups).flatmap(lambda group: group)


BAD_FILES = evenly(FIELDS, GEOMETRY, DOCUMENT)
# changes that can pass every check of the parser, to reach the database
STORABLE = st.one_of(
    in_feature(("properties", "policy_id"), TEXT),
    in_feature(("properties", "sum_insured_usdc"), MONEY),
    in_feature(("properties", "policy_terms"), TERMS),
    in_geometry(lambda index, z: [[[*position, z] for position in ring(index)]], COORDINATES),
    in_feature(("geometry", "bbox"), JSON_VALUES),
)


def kind(upload) -> str:
    """What an example changes, for the statistics (`--hypothesis-show-statistics`)."""
    if not isinstance(upload, Change):
        return type(upload).__name__
    if len(upload.path) < 3:
        return "document" + "".join(f".{key}" for key in upload.path if isinstance(key, str))
    names = (key if key in NAMED else "<other>" for key in upload.path[2:4])
    return ".".join(names)


def check_refusal(error: PlotsFileError, source: str) -> None:
    """One line a problem (one line in all for a problem of the whole file), each naming the source,
    the feature and plot id, the field and the value."""
    message = str(error)
    lines = message.split("\n")
    assert len(message.splitlines()) == len(lines), f"a line break inside a line: {message!r}"
    assert error.source == source and lines[0].startswith(f"{source}: ") and error.problems
    if len(error.problems) == 1 and error.problems[0].index is None:
        assert len(lines) == 1
    else:
        assert lines[1:] == [f"  - {problem}" for problem in error.problems]
    for problem in error.problems:
        shown = str(problem)
        assert problem.reason and len(shown) <= 500, shown
        assert problem.field[:20] in shown or repr(problem.field)[1:-1][:20] in shown  # as is, or escaped
        assert not shown.startswith("=") and ": =" not in shown  # an empty field name shows as ''
        if problem.index is not None:
            assert shown.startswith(f"feature {problem.index}")
            if problem.plot_id:
                assert repr(problem.plot_id)[:20] in shown
        if problem.value is not None:
            assert repr(problem.value)[:20] in shown


def check_storable(frame) -> None:
    """Every accepted plot fits the plots table: what the parser lets through the database takes."""
    for plot in frame.to_dict("records"):
        assert PLOT_ID.fullmatch(plot["plot_id"]), plot["plot_id"]
        assert re.fullmatch("0x[0-9a-f]{40}", plot["farmer_address"]) and plot["crop"] in CROPS
        assert 0 < len(plot["policy_id"].encode()) <= 2704  # what a btree index row of plots.policy_id holds
        assert 0 < plot["max_payout_micro_usdc"] <= plot["sum_insured_micro_usdc"] <= BIGINT
        assert plot["sowing_date"] < plot["season_end"]
        assert 0 < plot["area_ha"] <= 50
        for text in (plot["policy_id"], canonical_json(plot["geometry"]), canonical_json(plot["policy_terms"])):
            text.encode()  # UTF-8: no lone surrogate
            assert "\x00" not in text and "\\u0000" not in text  # PostgreSQL text and jsonb hold no U+0000
        json.dumps(plot["geometry"], allow_nan=False)
        json.dumps(plot["policy_terms"], allow_nan=False, default=str)


def first(*tail) -> tuple:
    """The path of a member of the first plot."""
    return ("features", 0, *tail)


# the failures found, each fixed in registry.py: a traceback, a plot accepted that PostgreSQL then
# refused with a driver traceback (the table unchanged: one transaction), a bad value accepted, or a
# message not one line naming the field. Found by hypothesis unless marked "review".
@pytest.mark.unit
@example(upload=Change(first("geometry", "coordinates", 0, 0), [34.666204, 0.23772, Raw("9" * 309)]))  # OverflowError
@example(upload=Change(first("geometry", "coordinates", 0, 1), [34.667687, 0.23772, 0.0]))  # 2D and 3D: ValueError
@example(upload=Change(first("geometry", "coordinates"), [square(0, 1.192092896e-07)]))  # accepted as 0.0000 ha
@example(upload=Change(first("geometry", "bbox"), {"\x00": None}))  # accepted, then refused by jsonb
@example(upload=Change(first("geometry", "bbox"), "\ud800"))  # UnicodeEncodeError hashing the plot
@example(upload=Change(first("properties", "plot_id"), "0\n"))  # accepted: the regex's $ takes a trailing newline
@example(upload=Change(first("properties", "plot_id"), "K" * 336))  # the plot id not cut: a 500-character line
@example(  # accepted, like the plot id with a trailing newline
    upload=Change(first("properties", "farmer_address"), DEMO["features"][0]["properties"]["farmer_address"] + "\n")
)
@example(upload=Change(first("properties", ""), 0.0))  # an unknown field without a name: "=0.0: unknown field"
@example(upload=Change(first("properties", "colour\n  - feature 1: all good"), "x"))  # review: a forged line
@example(upload=Change(first("properties", "sum_insured_usdc"), Raw("1e13")))  # accepted, beyond the BIGINT column
@example(upload=Change(first("properties", "sum_insured_usdc"), Raw("1e999999999")))  # review: decimal.Overflow
@example(upload=Change(first("properties", "policy_id"), "\ud800"))  # UnicodeEncodeError hashing the plot
@example(upload=Change(first("properties", "policy_id"), noise(2705)))  # past the receiver's String[64]
@example(  # review: decimal.Overflow adding up the weights
    upload=Change(first("properties", "policy_terms"), {"weights": {"weather": Raw("1e999999999"), "satellite": 0}})
)
@example(upload=Change(first("properties", "policy_terms"), {"spi": {"gamma_parameters": math.nan}}))  # review: jsonb
@settings(max_examples=600)
@given(upload=BAD_FILES)
def test_a_bad_plots_file_is_accepted_whole_or_refused_in_named_lines(upload):
    try:
        frame = parse_plots(upload.data(), SOURCE)
    except PlotsFileError as error:
        event("refused", kind(upload))
        check_refusal(error, SOURCE)
    else:
        event("accepted", kind(upload))
        check_storable(frame)


def table_bytes(db) -> list[str]:
    """Every column of every plot row as PostgreSQL prints it: equal means byte-identical."""
    return db.read_frame("SELECT p::text AS row FROM plots p ORDER BY plot_id")["row"].tolist()


@pytest.mark.integration
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(upload=evenly(BAD_FILES, STORABLE))
def test_a_refused_plots_import_leaves_the_table_byte_for_byte_as_it_was(upload, clean_plots, tmp_path):
    """Through the `plots` asset itself (read, parse, store), the registry holding the unchanged file."""
    store_plots(clean_plots, parse_plots(DEMO_BYTES, "demo"), "demo")
    before = table_bytes(clean_plots)
    path = tmp_path / "plots.geojson"
    path.write_bytes(upload.data())
    try:
        plots(PlotsConfig(source=str(path)), clean_plots, ObjectStoreResource(local_root=str(tmp_path / "objects")))
    except PlotsFileError as error:
        event("refused", kind(upload))
        check_refusal(error, str(path))
        assert table_bytes(clean_plots) == before
    else:
        event("accepted", kind(upload))


@pytest.mark.unit
def test_a_utf16_file_cannot_hide_its_nesting_from_the_depth_check():
    """Review: the depth is counted in bytes, and in UTF-16 '∀' is the bytes 00 22, a quote, which
    made the count skip 30,000 levels of nesting that json.loads (which reads UTF-16) then recursed
    into: RecursionError. A plots file is UTF-8 (RFC 8259), a UTF-8 BOM aside."""
    document = copy.deepcopy(DEMO)
    document["features"][0]["properties"]["policy_id"] = "\u2200"
    document["features"][0]["properties"]["crop"] = "@"
    text = json.dumps(document, ensure_ascii=False).replace('"@"', "[" * 30_000 + "]" * 30_000)
    with pytest.raises(PlotsFileError) as caught:
        parse_plots(text.encode("utf-16"), SOURCE)
    assert str(caught.value) == (
        f"{SOURCE}: file: is not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte; "
        "nothing was changed"
    )
    with pytest.raises(PlotsFileError, match="nesting depth=30004: JSON arrays/objects nested deeper"):
        parse_plots(text.encode("utf-8-sig"), SOURCE)
    assert len(parse_plots(b"\xef\xbb\xbf" + DEMO_BYTES, SOURCE)) == FEATURES


# what got past the parser and failed in PostgreSQL, a driver error and a traceback (the table was
# unchanged: one transaction); now refused by field, in the CLI's one message
REACHED_THE_DATABASE = [
    pytest.param(first("properties", "policy_id"), "POL\x00", "policy_id", id="U+0000 in policy_id"),
    pytest.param(first("properties", "policy_id"), noise(9000), "policy_id", id="policy_id over the index row"),
    pytest.param(first("properties", "sum_insured_usdc"), Raw("1e13"), "sum_insured_usdc", id="over the BIGINT"),
    pytest.param(
        first("properties", "policy_terms"), {"spi": {"gamma_parameters": math.nan}}, "policy_terms", id="NaN"
    ),
    pytest.param(
        first("properties", "policy_terms"),
        {"layers": {"\x00": {"peril": "drought", "index": "spi_3", "trigger": "-1", "exit": "-2"}}},
        "policy_terms",
        id="U+0000 in a layer name",
    ),
    pytest.param(first("geometry", "bbox"), {"\x00": None}, "geometry", id="U+0000 in a geometry member"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("path", "value", "field"), REACHED_THE_DATABASE)
def test_what_postgresql_refused_is_refused_by_name_and_changes_nothing(
    path, value, field, clean_plots, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DATABASE_URL", clean_plots.url)
    store_plots(clean_plots, parse_plots(DEMO_BYTES, "demo"), "demo")
    before = table_bytes(clean_plots)
    upload = tmp_path / "plots.geojson"
    upload.write_bytes(Change(path, value).data())
    assert main(["plots", "import", str(upload)]) == 1
    header, problem, end = capsys.readouterr().err.split("\n")
    assert header == f"microcrop plots: {upload}: 1 invalid plot feature(s), nothing was changed:" and end == ""
    assert problem.startswith(f"  - feature 0 (plot_id 'KE-KAK-001'): {field}=")
    assert table_bytes(clean_plots) == before


@pytest.mark.unit
def test_the_sum_insured_named_in_another_fields_problem_stays_on_its_line():
    """Review: a max payout over the sum insured named the sum as written, its line break and all."""
    document = copy.deepcopy(DEMO)
    document["features"][0]["properties"].update(sum_insured_usdc="500\n", max_payout_usdc="750")
    with pytest.raises(PlotsFileError) as caught:
        parse_plots(to_json(document), SOURCE)
    check_refusal(caught.value, SOURCE)
    assert caught.value.problems[0].reason == "exceeds sum_insured_usdc '500\\n'"
