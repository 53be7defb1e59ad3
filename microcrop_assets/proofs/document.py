"""Proof documents: everything an auditor needs to recompute one damage assessment, as canonical JSON.

A proof holds the assessment's recorded `inputs` (policy terms, money, weather stresses with each
layer's fraction, the index values and the window, NDVI statistics with their raster keys and hashes,
the baseline with its window and hash), the `weather_chain` behind those weather numbers (the plot
weather day's station ids and weights from weather_indices, each layer's index, trigger and exit and
the peril weights from the policy terms: the damage inputs leave them in their tables), the outputs
recomputed from the inputs by `science.damage.assess_one`, the formula (method version and its steps)
and the code version. The weather part of the inputs (layer fractions, peril stresses, weather_stress)
must also recompute from its index values and the chain (`weather_differences`). Canonical bytes
(sorted keys, no insignificant whitespace, UTF-8, no NaN) make the document, and so its CID, a function
of its content alone.

The JSON Schema of a proof is versioned with the damage method: `schema/damage-proof.<method>.json`.
"""

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, DecimalException, InvalidOperation
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from microcrop_assets.science import damage
from microcrop_assets.science.plot_indices import stored_layers, weather_stresses
from microcrop_assets.science.policy import PERILS

if TYPE_CHECKING:
    import jsonschema  # imported on first validation: the definitions load without it

SCHEMA_DIR = Path(__file__).with_name("schema")
PROOF_KIND = "microcrop/damage-proof"

# what the method computes, in words an auditor can check against the numbers (science.md section 6)
FORMULA = (
    "weather_damage = weather_stress (sum of peril weight x worst layer fraction, capped at 1)",
    "layer fraction = clip((trigger - x) / (trigger - exit), 0, 1)",
    "satellite_damage = layer fraction of the NDVI decline (baseline - ndvi) / baseline, or of the z-score"
    " (ndvi - mean) / std, with the policy's satellite trigger and exit; only with NDVI no older than"
    " max_age_days, valid fraction >= min_valid_fraction and a usable baseline",
    "weights = the policy's weights renormalised over the sources with data",
    "damage = min(1, (w_weather x weather_damage + w_satellite x satellite_damage) x stage multiplier)",
    "triggered = damage >= trigger_threshold",
    "payout share = max(damage - deductible, 0), or damage when damage >= franchise (else 0)",
    "entitlement = min(round_half_up(sum_insured x payout share), max_payout) when triggered, else 0",
    "season_paid = the sum of the payouts of the plot-season's other paying assessments (any day, any policy id)"
    " stored when this one was assessed, each listed",
    "payout = max(min(entitlement - season_paid, sum_insured - season_paid), 0)",
    "shares quantised half-up to 12 places; money in micro-USDC and basis points rounded half-up",
)


class ProofError(ValueError):
    """A proof cannot be built, or a document is not a valid proof; the message names the field."""


@dataclass(frozen=True)
class Difference:
    field: str
    expected: Any
    actual: Any
    labels: tuple[str, str] = ("proof says", "recomputed")

    def __str__(self) -> str:
        return f"{self.field}: {self.labels[0]} {_show(self.expected)}, {self.labels[1]} {_show(self.actual)}"


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    """Sorted keys, compact separators, UTF-8, NaN/Infinity refused."""
    try:
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except ValueError as error:
        raise ProofError(f"proof is not canonical JSON: {error}") from None
    except TypeError as error:
        raise ProofError(f"proof holds a value JSON cannot carry: {error}") from None


def schema_path(method_version: str) -> Path:
    return SCHEMA_DIR / f"damage-proof.{method_version}.json"


@cache
def proof_schema(method_version: str) -> dict:
    path = schema_path(method_version)
    if not path.is_file():
        known = sorted(p.name for p in SCHEMA_DIR.glob("damage-proof.*.json"))
        raise ProofError(f"no proof schema for method {method_version!r} (known: {', '.join(known)})")
    return json.loads(path.read_text())


def validate(document: Any) -> None:
    """Validate against the schema of the document's method; ProofError names the first bad field."""
    if not isinstance(document, dict):
        raise ProofError(f"a proof is a JSON object, got {type(document).__name__}")
    method = document.get("method_version")
    if not isinstance(method, str):
        raise ProofError(f"method_version={method!r} is not a method version")
    errors = list(_validator(method).iter_errors(document))
    if errors:
        # the most specific error, descending into anyOf branches (a null-or-object field, say)
        from jsonschema.exceptions import best_match

        first = best_match(errors)
        # a key is the document's own text: quoted when it would not print as itself (a newline splits the line)
        parts = (str(part) if str(part).isprintable() else repr(part) for part in first.absolute_path)
        where = "/".join(parts) or "(document)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ProofError(f"proof field {where}: {first.message[:300]}{more}")


@cache
def _validator(method_version: str) -> "jsonschema.Draft202012Validator":
    """The schema with its local `#/$defs/...` references inlined: the same constraints, and
    validation several times faster (resolving a reference is the validator's costliest step)."""
    import jsonschema

    schema = proof_schema(method_version)
    jsonschema.Draft202012Validator.check_schema(schema)
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) == 1:
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return jsonschema.Draft202012Validator(
        inline(schema), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@cache
def code_version() -> dict[str, str]:
    """The package version and the sha256 of the module that computes the assessment."""
    try:
        version = metadata.version("microcrop-assets")
    except metadata.PackageNotFoundError:
        version = "unknown"
    module = Path(damage.__file__).read_bytes()
    return {
        "package": "microcrop-assets",
        "version": version,
        "damage_module_sha256": hashlib.sha256(module).hexdigest(),
    }


def recompute_outputs(inputs: Sequence[Mapping[str, Any]]) -> list[dict | ProofError]:
    """Outputs recomputed from each inputs document, in one vectorised `assess` call; when a document
    is unusable, each is recomputed alone so only that one gets its error."""
    try:
        frame = damage.assess_inputs(inputs)
    except _INPUT_ERRORS:
        return [_recompute_one(document) for document in inputs]
    return [{c: damage.json_value(row[c]) for c in damage.OUTPUT_COLUMNS} for _, row in frame.iterrows()]


# ArithmeticError: a number beyond the method's arithmetic (a decimal signal its context traps, an integer
# too large for numpy), e.g. a share or a sum insured of 10**400
_INPUT_ERRORS = (damage.AssessmentInputError, KeyError, TypeError, ValueError, ArithmeticError)


def _recompute_one(inputs: Mapping[str, Any]) -> dict | ProofError:
    try:
        return damage.assess_one(inputs)
    except DecimalException as error:  # its text names only the signal
        return ProofError(
            f"inputs do not recompute: {type(error).__name__}: a number is beyond the method's exact decimal arithmetic"
        )
    except _INPUT_ERRORS as error:
        return ProofError(f"inputs do not recompute: {type(error).__name__}: {error}")


def weather_chain(policy_terms: Mapping[str, Any], stations: list | None, station_weights: list) -> dict:
    """The weather chain of a proof: the plot weather day's stations and their weights (weather_indices)
    and the policy's layer definitions and peril weights (resolved plots.policy_terms)."""
    if stations is not None and len(stations) != len(station_weights):
        raise ProofError(f"weather_chain: {len(stations)} stations {stations} but {len(station_weights)} weights")
    return {
        "stations": stations,
        "station_weights": station_weights,
        "layers": policy_terms["layers"],
        "peril_weights": policy_terms["peril_weights"],
    }


def _chain_differences(inputs: Mapping[str, Any], chain: Mapping[str, Any]) -> list[str]:
    """Where the weather inputs and the chain's layer definitions do not belong together."""
    weather = inputs.get("weather")
    if weather is None:
        return []
    defined = chain["layers"]
    problems = [
        f"inputs.weather.layers.{name} has no layer definition" for name in weather["layers"] if name not in defined
    ]
    problems += [
        f"layer {name}: no fraction in inputs.weather.layers" for name in defined if name not in weather["layers"]
    ]
    problems += [
        f"layer {name}: its index {layer['index']} has no value in inputs.weather.indices"
        for name, layer in defined.items()
        if layer["index"] not in weather["indices"]
    ]
    problems += [
        f"layer {name}: its peril {layer['peril']} has no weight in weather_chain.peril_weights"
        for name, layer in defined.items()
        if layer["peril"] not in chain["peril_weights"]
    ]
    # what the layer formula cannot take (science.layers raises): compared as the floats it computes with
    problems += [
        f"layer {name}: trigger {layer['trigger']} equals exit {layer['exit']}, the layer has no width"
        for name, layer in defined.items()
        if float(Decimal(layer["trigger"])) == float(Decimal(layer["exit"]))
    ]
    problems += [
        f"weather_chain.peril_weights.{peril}={weight!r} is negative"
        for peril, weight in chain["peril_weights"].items()
        if Decimal(weight) < 0
    ]
    return problems


def weather_differences(inputs: Mapping[str, Any], chain: Mapping[str, Any]) -> list[Difference]:
    """Where `inputs.weather` does not follow from its index values and the chain's layers and peril
    weights, recomputed by the pipeline's own code (`science.plot_indices.weather_stresses`); for inputs
    and a chain that belong together (`_chain_differences` empty). No weather part, nothing to check.

    The comparison rule: `weather_indices` keeps each layer fraction rounded to 6 places
    (`plot_indices.stored_layers`), so a stored fraction must equal the recomputed one rounded the same way; the
    peril stresses and `weather_stress` are kept unrounded (float8) and must equal the recomputation
    exactly. Numbers compare by value; null is a missing value, as in the pipeline: a missing index
    gives a missing layer, a missing layer a missing peril stress unless another layer of the peril
    reached 1, and a missing peril stress a missing `weather_stress` unless the others reach the cap."""
    weather = inputs.get("weather")
    if weather is None:
        return []
    indices = pd.DataFrame(
        {name: [_float(value, f"inputs.weather.indices.{name}")] for name, value in weather["indices"].items()},
        index=[0],
        dtype=float,
    )
    fractions, perils, weather_stress = weather_stresses(indices, chain)
    recomputed = [
        (f"layers.{name}", weather["layers"][name], values[0]) for name, values in stored_layers(fractions).items()
    ]
    recomputed += [
        (f"{peril}_stress", weather[f"{peril}_stress"], perils[peril][0] if peril in perils else math.nan)
        for peril in PERILS
    ]
    recomputed.append(("weather_stress", weather["weather_stress"], weather_stress[0]))
    differences = []
    for path, stated, value in recomputed:
        field = f"inputs.weather.{path}"
        number = _float(stated, field)
        if not (number == value or (math.isnan(number) and math.isnan(value))):
            differences.append(Difference(field, stated, None if math.isnan(value) else float(value)))
    return differences


def _float(value: Any, field: str) -> float:
    """A weather number of the inputs (JSON number or decimal text, the float's shortest repr) as the
    float the pipeline computed with; null is NaN."""
    if value is None:
        return math.nan
    try:
        number = Decimal(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise ProofError(f"{field}={value!r} is not a number")
    return float(number)


def build_proof(
    inputs: Mapping[str, Any],
    recorded: Mapping[str, Any],
    chain: Mapping[str, Any],
    outputs: dict | ProofError | None = None,
) -> tuple[dict, bytes]:
    """The proof of one assessment and its canonical bytes.

    `recorded` is the assessment as stored (a `damage_assessments` row), `chain` its `weather_chain`.
    The outputs are recomputed from `inputs` (or given, from `recompute_outputs`); any difference from
    the stored row refuses the proof, naming the fields."""
    if outputs is None:
        outputs = _recompute_one(inputs)
    if isinstance(outputs, ProofError):
        raise ProofError(f"assessment {recorded.get('assessment_id')}: {outputs}")
    _refuse_if(
        recorded,
        compare_outputs(recorded, outputs),
        "stored outputs differ from the outputs recomputed from its inputs",
    )
    _refuse_if(recorded, _chain_differences(inputs, chain))
    _refuse_if(
        recorded,
        weather_differences(inputs, chain),
        "inputs.weather does not follow from its indices and the weather chain",
    )
    document = {
        "kind": PROOF_KIND,
        "assessment_id": outputs["assessment_id"],
        "method_version": outputs["method_version"],
        "schema": schema_path(outputs["method_version"]).name,
        "inputs": dict(inputs),
        "weather_chain": dict(chain),
        "outputs": outputs,
        "formula": {"method_version": outputs["method_version"], "steps": list(FORMULA)},
        "code": code_version(),
    }
    data = canonical_bytes(document)
    try:
        validate(json.loads(data))
    except ProofError as error:  # named like the other refusals: the day's run lists them side by side
        raise ProofError(f"assessment {recorded.get('assessment_id')}: {error}") from None
    return document, data


def _refuse_if(recorded: Mapping[str, Any], problems: Sequence[Any], reason: str | None = None) -> None:
    """Refuse the proof of the `recorded` assessment when there are problems, naming each."""
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise ProofError(f"assessment {recorded.get('assessment_id')}: {f'{reason}: ' if reason else ''}{listed}")


def recompute(document: Mapping[str, Any]) -> list[Difference]:
    """Recompute a proof's weather part (layer fractions, peril stresses, weather_stress) from its index
    values and weather chain, then its outputs from its inputs; the fields where the proof says otherwise,
    in that order (a changed index shows first where it enters)."""
    inputs, chain = document["inputs"], document["weather_chain"]
    problems = _chain_differences(inputs, chain)
    differences = [Difference("weather_chain", "layers matching inputs.weather", problem) for problem in problems]
    if not problems:  # the weather part recomputes only against layer definitions that fit it
        differences += weather_differences(inputs, chain)
    outputs = _recompute_one(inputs)
    if isinstance(outputs, ProofError):
        return [*differences, Difference("inputs", "inputs the method can assess", str(outputs))]
    differences += compare_outputs(document["outputs"], outputs, prefix="outputs.")
    if document.get("assessment_id") != outputs["assessment_id"]:
        differences.append(Difference("assessment_id", document.get("assessment_id"), outputs["assessment_id"]))
    return differences


def document_differences(
    expected: Any, actual: Any, labels: tuple[str, str] = ("pinned", "this copy"), path: str = ""
) -> list[Difference]:
    """Every value where two JSON documents differ, by dotted path (a copy against the pinned proof,
    recorded inputs against their source tables)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return [
            difference
            for key in sorted(set(expected) | set(actual))
            for difference in document_differences(expected.get(key), actual.get(key), labels, f"{path}{key}.")
        ]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            difference
            for index, (a, b) in enumerate(zip(expected, actual, strict=True))
            for difference in document_differences(a, b, labels, f"{path}{index}.")
        ]
    return [] if expected == actual else [Difference(path.rstrip("."), expected, actual, labels)]


def compare_outputs(expected: Mapping[str, Any], actual: Mapping[str, Any], prefix: str = "") -> list[Difference]:
    """Differences over the method's output fields; numbers compare by value (0.5 == 0.500)."""
    return [
        Difference(f"{prefix}{name}", expected.get(name), actual.get(name))
        for name in damage.OUTPUT_COLUMNS
        if not _same(expected.get(name), actual.get(name))
    ]


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    number_a, number_b = _number(a), _number(b)
    if number_a is not None and number_b is not None:
        return number_a == number_b
    return a == b


def _plain(value: Any) -> Any:
    """Database values in the JSON form the method outputs (dates ISO, datetimes in UTC)."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).isoformat()
    return damage.json_value(value)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None
