"""`microcrop verify-proof` given any file never shows a traceback (issue 17 item 3), property-based with
hypothesis: arbitrary JSON, bytes that are not a canonical proof, and a valid proof changed in one field (a key
deleted, a value replaced or shifted, a key added) each end verified or refused. A refusal is one line on stderr
naming the file, or exit 1 with the fields that do not recompute listed on stdout. A changed proof is verified only
when the change is neutral: the same number spelled otherwise, or a value the recomputation does not read or that
does not move its result (what only the proof's CID protects)."""

import contextlib
import datetime as dt
import functools
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from microcrop_assets.cli import main
from microcrop_assets.proofs.document import ProofError, build_proof, canonical_bytes, proof_schema
from microcrop_assets.science.damage import assess_one
from microcrop_assets_tests.fixtures.proofs import chain_document, inputs_document

pytestmark = pytest.mark.unit

FieldPath = tuple[str | int, ...]


@functools.cache
def valid_proof() -> bytes:
    """A real proof's canonical bytes: weather stress 0.25 (the drought_rain layer at 23.75 mm), NDVI 0.42 against
    a 0.61 baseline, flowering; damage 0.692, entitlement and payout 148053279 micro-USDC (below the cap)."""
    inputs = inputs_document("plot-1", "0.25")
    return build_proof(inputs, assess_one(inputs), chain_document())[1]


def value_at(document: Any, path: FieldPath) -> Any:
    for part in path:
        document = document[part]
    return document


@functools.cache
def field_paths() -> tuple[FieldPath, ...]:
    """Every value of the valid proof by path, objects and arrays too, the document itself excepted."""

    def walk(node: Any, path: FieldPath) -> list[FieldPath]:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        return [path] + [child for key, value in items for child in walk(value, (*path, key))]

    return tuple(walk(json.loads(valid_proof()), ()))[1:]


@functools.cache
def object_paths() -> tuple[FieldPath, ...]:
    document = json.loads(valid_proof())
    return ((), *(path for path in field_paths() if isinstance(value_at(document, path), dict)))


# -- running the command -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def verify(path: Path, data: bytes) -> Outcome:
    """`microcrop verify-proof FILE` on these bytes, offline (a local file: no gateway, no store, no chain). An
    exception escaping `main` is the traceback a user would see: it fails the test as it is."""
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["verify-proof", str(path)])
    return Outcome(code, out.getvalue(), err.getvalue())


def assert_verified_or_refused(outcome: Outcome, path: Path) -> str:
    """Property 1: verified; or refused in one short line on stderr naming the file; or refused, exit 1, with the
    fields that do not recompute listed on stdout. Stdout prints on a strict UTF-8 terminal. Returns which."""
    if outcome.err:
        assert outcome.code in (1, 2) and outcome.out == "", outcome
        assert len(outcome.err.splitlines()) == 1 and outcome.err.endswith("\n"), outcome.err
        assert outcome.err.startswith(f"microcrop verify-proof {path}: ") and len(outcome.err) < 1000, outcome.err
        return f"refused on stderr, exit {outcome.code}"
    # the report: one printable line each (a value of the document cannot add a line, a verdict or a terminal
    # control sequence), the verdict last but the differences, on a strict UTF-8 terminal
    outcome.out.encode("utf-8")
    lines = outcome.out.split("\n")
    assert lines.pop() == "" and all(line.isprintable() for line in lines), outcome.out
    assert re.fullmatch(r"proof \S+: assessment \S+, plot .+, day \S+", lines[0]), outcome.out
    assert lines[1] == "schema: valid (damage-proof.damage-2.json)", outcome.out
    if outcome.code == 0:
        assert re.fullmatch(r"recomputed: match \(.*\)", lines[2]) and len(lines) == 3, outcome.out
        return "verified"
    assert outcome.code == 1 and re.fullmatch(r"recomputed: [1-9][0-9]* field\(s\) differ", lines[2]), outcome.out
    assert len(lines) > 3 and all(line.startswith("  ") for line in lines[3:]), outcome.out
    return "refused: fields listed on stdout"


@pytest.fixture(scope="module")
def proof_path(tmp_path_factory) -> Path:
    """One file the examples overwrite (module scope: hypothesis runs every example in the same test call)."""
    return tmp_path_factory.mktemp("verify_proof_properties") / "proof.json"


# -- arbitrary JSON and bytes ------------------------------------------------------------------------------------

HUGE = 10**400  # exact as a JSON integer, beyond every float and the method's 40-digit decimals
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([HUGE, -HUGE, 2**63, -(2**63) - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),  # lone surrogates: JSON escapes allow them
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def json_bytes(value: Any, form: str) -> bytes:
    """Compact with sorted keys (lone surrogates kept as the invalid UTF-8 they become), ASCII-escaped, or pretty."""
    if form == "compact":
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")
    return json.dumps(value, indent=2 if form == "pretty" else None).encode()


@functools.cache
def top_keys() -> tuple[str, ...]:
    return tuple(proof_schema("damage-2")["required"])


# objects with a proof's top-level keys (method_version mostly right) reach deeper into the schema
PROOF_SHAPED = st.deferred(
    lambda: st.fixed_dictionaries(
        {"method_version": st.sampled_from(["damage-2", "damage-2", "damage-1", "damage-3", ""])},
        optional={key: JSON_VALUES for key in top_keys() if key != "method_version"},
    )
)


@given(value=JSON_VALUES | PROOF_SHAPED, form=st.sampled_from(["compact", "ascii", "pretty"]))
@settings(max_examples=200)
@example(value={"method_version": "../../../../etc/passwd"}, form="compact")
@example(value={"method_version": "damage-2", "outputs": HUGE}, form="compact")
def test_any_json_value_is_refused_in_one_line(proof_path, value, form):
    outcome = verify(proof_path, json_bytes(value, form))
    event(assert_verified_or_refused(outcome, proof_path))
    assert outcome.code != 0  # no arbitrary value is a proof that recomputes


# -- a valid proof changed in one field --------------------------------------------------------------------------

DEEP = "\x00nested 100000 deep\x00"  # written as that many nested arrays: beyond what Python's json reads


@dataclass(frozen=True)
class Change:
    """One change to the valid proof: `delete` the value at `path`, `replace` it with `value`, or `add` the key
    value[0] with the value value[1] to the object at `path`."""

    kind: str
    path: FieldPath
    value: Any = None

    def applied(self) -> dict:
        document = json.loads(valid_proof())
        if self.kind == "add":
            key, value = self.value
            value_at(document, self.path)[key] = value
            return document
        *parent, last = self.path
        if self.kind == "delete":
            del value_at(document, tuple(parent))[last]
        else:
            value_at(document, tuple(parent))[last] = self.value
        return document


def proof_bytes(document: dict) -> bytes:
    """The document's canonical bytes; with a value canonical JSON refuses (a lone surrogate), escaped JSON, which
    verify-proof must refuse as not canonical; DEEP written as its nesting."""
    try:
        data = canonical_bytes(document)
    except ProofError:
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return data.replace(json.dumps(DEEP).encode(), b"[" * 100_000 + b"]" * 100_000)


ASSESSMENT_ID = "9c264784-6660-5237-be5a-da26547e0bd3"  # the valid proof's
NASTY_TEXT = st.sampled_from(
    [
        "",
        "-1",
        "1" * 50,
        "0." + "0" * 40 + "1",
        "NaN",
        "1e5",
        "damage-1",
        "damage-3",
        "DAMAGE-2",
        "damage-2 ",
        "plöt-1 🌾\u202e",  # a right-to-left override
        "plot-1\nrecomputed: match (damage 0)",  # a line of the report
        "\x1b[2J",  # a terminal control sequence
        f"{ASSESSMENT_ID}\n",  # Python's `$` in the schema's patterns lets a trailing newline through
        "2025-06-20\n",
        "250000000\n",
        "\ud800",
        "bafkreiajjytnoszoizdtif4ecw6mfykc657f6iz2omi3ktuyvwupep52by",  # a CID where a value belongs
        "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/proof.json",
        "0x" + "0" * 40,
        "00000000-0000-0000-0000-000000000000",
        "2025-02-30",
        "2025-06-21",
        "9999-12-31",
    ]
)
NASTY = NASTY_TEXT | st.sampled_from([None, True, 0, -1, HUGE, -HUGE, 1e308, -0.0, [], {}, [None], DEEP])
# decimal texts as the schema spells them: small, and up to 60 digits before and 12 after the point
DECIMALS = st.one_of(st.decimals(-2, 2, places=3), st.decimals(-(10**60), 10**60, places=12)).map(
    lambda number: format(number, "f")
)
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        parsed = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        return None
    return parsed if parsed.is_finite() else None


def same_value(a: Any, b: Any) -> bool:
    """Equal as JSON, or the same number however spelled (verify-proof compares numbers by value)."""
    if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
        return True
    x, y = number(a), number(b)
    return x is not None and x == y


def shifted(value: Any, draw) -> Any:
    """The value moved, its type kept: an integer or a decimal text by an amount, a date by days."""
    if isinstance(value, int) and not isinstance(value, bool):
        return draw(st.sampled_from([value + 1000, value - 1000, value + 10**9, value + HUGE, -HUGE, -value - 1]))
    if isinstance(value, str) and NUMBER.fullmatch(value):
        delta = draw(st.sampled_from(["0.001", "-0.001", "1", "-1", "1" * 50, "-0.000001"]) | DECIMALS)
        return format(Decimal(value) + Decimal(delta), "f")
    if isinstance(value, str) and DATE.fullmatch(value):
        return (dt.date.fromisoformat(value) + dt.timedelta(days=draw(st.sampled_from([1, -1, 30, -3650])))).isoformat()
    return draw(NASTY)


@functools.cache
def text_paths() -> tuple[FieldPath, ...]:
    document = json.loads(valid_proof())
    return tuple(path for path in field_paths() if isinstance(value_at(document, path), str))


@st.composite
def changes(draw) -> Change:
    # shifts mostly pass the schema; texts reach the report's lines
    kind = draw(st.sampled_from(["delete", "replace", "shift", "shift", "text", "add"]))
    document = json.loads(valid_proof())
    if kind == "text":
        path = draw(st.sampled_from(text_paths()))
        new = draw(NASTY_TEXT | st.text(min_size=1, max_size=12))
        return Change("replace", path, DEEP if same_value(value_at(document, path), new) else new)
    if kind == "add":
        path = draw(st.sampled_from(object_paths()))
        key = draw(st.sampled_from(["extra", "weather_stress", "frost", "2025-06-20"]) | st.text(max_size=8))
        if key in value_at(document, path):
            key += "-new"
        return Change("add", path, (key, draw(NASTY | JSON_VALUES)))
    path = draw(st.sampled_from(field_paths()))
    if kind == "delete":
        return Change("delete", path)
    old = value_at(document, path)
    new = shifted(old, draw) if kind == "shift" else draw(NASTY | JSON_VALUES)
    if same_value(old, new):  # the same value: not a change (respellings are tested on their own below)
        new = DEEP
    return Change("replace", path, new)


# Changing any of these (or a value holding one) changes what the recomputation gives for the valid proof, whatever
# the new value, so the change must be refused. Why, for this proof:
MUST_REFUSE: tuple[FieldPath, ...] = (
    # constants of the schema, and the id recomputed from plot, policy, day and method
    ("kind",),
    ("assessment_id",),
    ("method_version",),
    ("schema",),
    ("formula", "method_version"),
    ("code", "package"),
    ("inputs", "method_version"),
    ("inputs", "plot_id"),
    ("inputs", "policy_id"),
    ("inputs", "day"),
    # every output is recomputed and compared
    ("outputs",),
    # the payout: 250 000 000 x (0.692213114754 - deductible 0.10) is below the cap, so both move it
    ("inputs", "sum_insured_micro_usdc"),
    ("inputs", "terms", "deductible"),
    # outputs.weights are these renormalised (0.6 / (0.6 + 0.4)): either one moves them
    ("inputs", "terms", "weights", "weather"),
    ("inputs", "terms", "weights", "satellite"),
    ("inputs", "terms", "stage_sensitivity", "flowering"),  # outputs.stage_multiplier
    # the weather part: every layer fraction and stress is recomputed exactly; drought_rain (30 - 23.75) / (30 - 5)
    # is 0.25 only for that index, trigger and exit, and the weather stress is the drought weight x 0.25
    ("inputs", "weather", "weather_stress"),
    ("inputs", "weather", "drought_stress"),
    ("inputs", "weather", "flood_stress"),
    ("inputs", "weather", "heat_stress"),
    ("inputs", "weather", "layers"),
    ("inputs", "weather", "indices", "worst_14d_rain_mm"),
    ("weather_chain", "layers", "drought_rain", "trigger"),
    ("weather_chain", "layers", "drought_rain", "exit"),
    ("weather_chain", "peril_weights", "drought"),
    # the satellite damage 0.7787 lies inside its layer (decline 0.311 between trigger 0 and exit 0.4)
    ("inputs", "ndvi", "ndvi_mean"),
    ("inputs", "baseline", "ndvi_mean"),
    ("inputs", "terms", "satellite", "trigger"),
    ("inputs", "terms", "satellite", "exit"),
    # the confidence 0.6 x (66 - 3) / 66 + 0.4 x 0.93 to 4 places: any other window or missing days move it
    ("inputs", "weather", "window_days"),
    ("inputs", "weather", "missing_days"),
)
# a number moved less than this (1 for an integer: one micro-USDC, one day) may round away: no claim
RESOLUTION = Decimal("0.000001")
# objects the schema closes (no other keys) or whose keys must pair with another object's
CLOSED: tuple[FieldPath, ...] = (
    (),
    ("inputs", "season_paid"),
    ("weather_chain",),
    ("weather_chain", "layers"),
    ("formula",),
    ("code",),
)


def differing_paths(a: Any, b: Any, path: FieldPath = ()) -> list[FieldPath]:
    """Where two JSON documents differ (a key only one has: its path)."""
    if isinstance(a, dict) and isinstance(b, dict):
        only = [(*path, key) for key in a.keys() ^ b.keys()]
        return only + [p for key in a.keys() & b.keys() for p in differing_paths(a[key], b[key], (*path, key))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for index, pair in enumerate(zip(a, b, strict=True)) for p in differing_paths(*pair, (*path, index))]
    return [] if json.dumps(a) == json.dumps(b) else [path]


def must_refuse(change: Change) -> bool:
    if change.kind == "add":
        landed = (*change.path, change.value[0])
        return change.path in CLOSED or any(landed[: len(q)] == q for q in MUST_REFUSE)
    if change.kind == "replace":
        old = value_at(json.loads(valid_proof()), change.path)
        before, after = number(old), number(change.value)
        if (
            before is not None
            and after is not None
            and abs(after - before) <= (1 if isinstance(old, int) else RESOLUTION)
        ):
            return False
    return any(change.path[: len(q)] == q or q[: len(change.path)] == change.path for q in MUST_REFUSE)


@given(change=changes())
@settings(max_examples=350)
@example(change=Change("replace", ("method_version",), "damage-1"))  # a method with no schema
@example(change=Change("replace", ("inputs", "sum_insured_micro_usdc"), -250_000_000))  # negative money
@example(change=Change("replace", ("outputs", "payout_micro_usdc"), 148053280))  # one micro-USDC more
@example(change=Change("replace", ("inputs", "plot_id"), "plöt-1 🌾"))
@example(change=Change("replace", ("outputs", "plot_id"), "plot-1\nrecomputed: match (damage 0)"))
@example(change=Change("add", ("inputs",), ("extra", DEEP)))
def test_a_changed_proof_is_refused_unless_the_change_is_neutral(proof_path, change):
    outcome = verify(proof_path, proof_bytes(change.applied()))
    result = assert_verified_or_refused(outcome, proof_path)
    event(result)
    if must_refuse(change):
        assert outcome.code != 0, f"{change} changes the assessment but verified:\n{outcome.out}"
    if outcome.err and not unreadable(change.value):
        assert names_the_change(outcome.err, change), outcome.err


def unreadable(value: Any) -> bool:
    """Values refused before any field is known: nesting JSON cannot read, text UTF-8 cannot carry."""
    text = json.dumps(value, ensure_ascii=False)  # lone surrogates stay themselves, pairs are one character
    return json.dumps(DEEP) in text or re.search("[\ud800-\udfff]", text) is not None


def names_the_change(err: str, change: Change) -> bool:
    """The refusal names the changed field, its object, the key added (as printed: quoted when not printable) or
    the new value."""
    keys = [part for part in change.path if isinstance(part, str)][-2:]
    if change.kind == "add":
        keys.append(change.value[0])
    named = "(document)" in err or any(key in err or repr(key)[1:-1] in err for key in keys)
    return named or (change.kind == "replace" and repr(change.value) in err)


# -- bytes that are not the valid proof --------------------------------------------------------------------------


@st.composite
def damaged_proofs(draw) -> bytes:
    """Bytes that are not a canonical proof: random, the valid proof cut short or with one byte changed, or spelled
    in a way JSON allows and a proof does not."""
    data = valid_proof()
    kind = draw(st.sampled_from(["random", "cut", "byte", "spelling"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "cut":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "byte":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([draw(st.integers(0, 255).filter(lambda b: b != data[at]))]) + data[at + 1 :]
    return draw(
        st.sampled_from(
            [
                b"\xef\xbb\xbf" + data,  # a byte order mark
                data.decode().encode("utf-16"),  # json.loads reads UTF-16 bytes too
                data + b"\n",
                data.replace(b'"23.75"', b"NaN"),  # JSON numbers Python reads and canonical JSON refuses
                data.replace(b'"23.75"', b"-Infinity"),
                data.replace(b'"23.75"', b"1e999"),
                data.replace(b"250000000", b"9" * 5000),  # beyond Python's int digit limit
                b"[" * 100_000 + b"]" * 100_000,  # beyond Python's recursion limit
                data.replace(b"plot-1", b"plot-\\ud800"),  # a lone surrogate, escaped
                b"",
                b"\x00",
            ]
        )
    )


@given(data=damaged_proofs())
@settings(max_examples=150)
def test_bytes_that_are_not_the_valid_proof_are_refused_unless_neutral(proof_path, data):
    outcome = verify(proof_path, data)
    event(assert_verified_or_refused(outcome, proof_path))
    if outcome.code == 0:  # a changed byte in text the recomputation does not read (formula.steps, say)
        changed = differing_paths(json.loads(valid_proof()), json.loads(data))
        assert changed and not any(must_refuse(Change("replace", path)) for path in changed), changed


# -- failures hypothesis and the exploration before it found, each fixed: the refusal that replaced the traceback --


BEYOND_DECIMALS = "inputs do not recompute: InvalidOperation: a number is beyond the method's exact decimal arithmetic"


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        # decimal.InvalidOperation escaped recompute: a share beyond the method's 40-digit context (hypothesis's
        # minimal example), and money
        pytest.param(
            Change("replace", ("inputs", "terms", "satellite", "trigger"), "1" * 28 + "0" * 22),
            BEYOND_DECIMALS,
            id="share-of-50-digits",
        ),
        pytest.param(
            Change("replace", ("inputs", "sum_insured_micro_usdc"), HUGE), BEYOND_DECIMALS, id="money-10**400"
        ),
        # OverflowError escaped: a crop calendar day numpy cannot hold
        pytest.param(
            Change("replace", ("inputs", "terms", "crop_calendar", "flowering"), HUGE),
            "inputs do not recompute: OverflowError: Python int too large to convert to C long",
            id="calendar-day-10**400",
        ),
        # ValueErrors of science.layers escaped, naming neither the layer nor the peril
        pytest.param(
            Change("replace", ("weather_chain", "layers", "drought_rain", "exit"), "30.0"),
            "layer drought_rain: trigger 30 equals exit 30.0, the layer has no width",
            id="layer-without-width",
        ),
        pytest.param(
            Change("replace", ("weather_chain", "peril_weights", "drought"), "-1"),
            "weather_chain.peril_weights.drought='-1' is negative",
            id="negative-peril-weight",
        ),
    ],
)
def test_inputs_the_method_cannot_compute_are_refused_by_name(proof_path, change, refusal):
    outcome = verify(proof_path, proof_bytes(change.applied()))
    assert assert_verified_or_refused(outcome, proof_path) == "refused: fields listed on stdout"
    assert refusal in outcome.out


def test_text_of_the_document_adds_no_line_to_what_is_printed(proof_path):
    """A key with a newline split the schema refusal in two lines; a plot id (or an assessment id ending in a
    newline, which the schema's pattern lets through) printed raw could add a false "recomputed: match"."""
    added = Change("add", ("inputs", "weather", "indices"), ("rain\nmm", True))
    outcome = verify(proof_path, proof_bytes(added.applied()))
    assert assert_verified_or_refused(outcome, proof_path) == "refused on stderr, exit 2"
    assert "proof field inputs/weather/indices/'rain\\nmm': True is not valid" in outcome.err
    for change in (
        Change("replace", ("outputs", "plot_id"), "plot-1\nrecomputed: match (damage 0)"),
        Change("replace", ("assessment_id",), f"{ASSESSMENT_ID}\n"),
    ):
        outcome = verify(proof_path, proof_bytes(change.applied()))
        assert assert_verified_or_refused(outcome, proof_path) == "refused: fields listed on stdout"
        assert repr(change.value) in outcome.out.splitlines()[0]


def test_the_same_numbers_spelled_otherwise_still_verify(proof_path):
    """Neutral changes, every one: each decimal text with trailing zeros, each micro-USDC integer as its digits
    (verify-proof compares numbers by value; the canonical bytes differ, only a CID would tell)."""
    document = json.loads(valid_proof())
    respelled = [
        (path, value + ("0" if "." in value else ".0"))
        for path in text_paths()
        if NUMBER.fullmatch(value := value_at(document, path))
    ]
    respelled += [
        (path, str(value_at(document, path)))
        for path in field_paths()
        if path[0] == "inputs" and str(path[-1]).endswith("micro_usdc")  # outputs' are integers only
    ]
    assert len(respelled) > 60
    for path, value in respelled:
        outcome = verify(proof_path, proof_bytes(Change("replace", path, value).applied()))
        assert assert_verified_or_refused(outcome, proof_path) == "verified", (path, value)
