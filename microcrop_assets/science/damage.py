"""Damage assessment and payout (science.md section 6), exact and vectorised over plots.

How exactness is kept:
- Every share (stress, damage, weight, deductible, NDVI) is a Decimal quantised half-up to 12 places
  (`SHARE_PLACES`) when it enters and after every product or quotient. Float inputs (the float8
  columns of `weather_indices`, `daily_ndvi`, `ndvi_baselines`) enter through their shortest repr,
  `Decimal(repr(x))`, so the value stated in the proof's `inputs` is the value computed with.
- Arithmetic runs in one fixed context (40 digits, half-up). Operands have at most 12 places and stay
  below 10^6, so products are exact; a quotient with a denominator below 10^16 (units of 10^-12)
  cannot lie within 10^-28 of a half-way point unless it is exactly on it, so rounding it at 40
  digits and then at 12 places gives the correctly rounded result.
- Money is integer micro-USDC (Python ints), shares sent on chain are basis points 0..10000, both
  rounded half-up from the exact product.
- Plots are rows of numpy object arrays of Decimal / int: one array expression per step for every plot,
  no per-plot code path. `assess_one` runs the same arrays with one row, so a proof recomputes exactly
  what the asset stored.
"""

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext
from typing import Any

import numpy as np
import pandas as pd

from microcrop_assets.science.policy import GROWTH_STAGES

METHOD_VERSION = "damage-2"
SHARE_PLACES = 12
_SHARE = Decimal(1).scaleb(-SHARE_PLACES)
_WHOLE = Decimal(1)
_CONFIDENCE = Decimal("0.0001")
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])
_ZERO, _ONE, _BPS = Decimal(0), Decimal(1), Decimal(10_000)
_ZERO_SHARE, _ONE_SHARE = _ZERO.quantize(_SHARE), _ONE.quantize(_SHARE)
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://microcrop.app/damage_assessments")

# science.md 6: damage below 0.2 none, below 0.4 minor, below 0.6 moderate, below 0.8 severe
SEVERITY_BANDS = (
    (Decimal("0.2"), "none"),
    (Decimal("0.4"), "minor"),
    (Decimal("0.6"), "moderate"),
    (Decimal("0.8"), "severe"),
)
CATASTROPHIC = "catastrophic"

# policy terms the assessment reads (the rest of a policy's terms concern the weather chain)
DAMAGE_TERMS = (
    "weights",
    "satellite",
    "stage_sensitivity",
    "crop_calendar",
    "trigger_threshold",
    "deductible",
    "franchise",
)

# the plain per-plot values `assess` takes, one row per plot
INPUT_COLUMNS = (
    "plot_id",
    "policy_id",
    "day",
    "sowing_date",
    "sum_insured_micro_usdc",
    "max_payout_micro_usdc",
    "season_paid_micro_usdc",
    "weather_stress",
    "weather_window_days",
    "weather_missing_days",
    "ndvi_day",
    "ndvi_mean",
    "ndvi_valid_fraction",
    "baseline_mean",
    "baseline_std",
    "terms",
)
OUTPUT_COLUMNS = (
    "assessment_id",
    "plot_id",
    "policy_id",
    "day",
    "method_version",
    "weather_damage",
    "satellite_damage",
    "sources",
    "weights",
    "confidence",
    "growth_stage",
    "stage_multiplier",
    "damage",
    "severity",
    "triggered",
    "entitlement_micro_usdc",
    "payout_micro_usdc",
    "damage_bps",
    "weather_damage_bps",
    "satellite_damage_bps",
    "assessed_at",
    "missing_reason",
)


class AssessmentInputError(ValueError):
    """An input of one plot's assessment is unusable; the message names the plot and the field."""


def share(value: Any, where: str = "value") -> Decimal | None:
    """An exact share from a Decimal, a numeric string, an int or a float (via its repr); None/NaN -> None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        raise AssessmentInputError(f"{where}={value!r} is not a number")
    try:
        number = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(float(value)) if isinstance(value, float) else str(value).strip())
        )
    except (InvalidOperation, ValueError, TypeError):
        raise AssessmentInputError(f"{where}={value!r} is not a number") from None
    if not number.is_finite():
        raise AssessmentInputError(f"{where}={value!r} is not a finite number")
    return number.quantize(_SHARE, context=_CONTEXT)


def _q(values: np.ndarray) -> np.ndarray:
    """Quantise an object array of Decimals to the share quantum (half-up)."""
    return np.array([v.quantize(_SHARE, context=_CONTEXT) for v in values], dtype=object)


def _round_int(values: np.ndarray) -> np.ndarray:
    """Round an object array of Decimals half-up to Python ints."""
    return np.array([int(v.quantize(_WHOLE, context=_CONTEXT)) for v in values], dtype=object)


def to_bps(values: np.ndarray) -> np.ndarray:
    """Shares 0..1 as basis points 0..10000, rounded half-up."""
    return _round_int(values * _BPS)


def layer_share(x: np.ndarray, trigger: np.ndarray, exit_: np.ndarray) -> np.ndarray:
    """Exact layer fraction clip((T - x) / (T - E), 0, 1): deficit when T > E, excess when T < E (science.md 3)."""
    fraction = _q((trigger - x) / (trigger - exit_))
    return np.minimum(np.maximum(fraction, _ZERO_SHARE), _ONE_SHARE)


def money(amount_micro_usdc: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Integer micro-USDC amount x share, rounded half-up to the micro-USDC."""
    return _round_int(np.array([Decimal(a) for a in amount_micro_usdc], dtype=object) * shares)


def season_payout(entitlement, sum_insured, paid):
    """What an assessment adds to its plot-season (scalars or arrays of ints): its entitlement less what the
    season has already paid, never negative, never past the sum insured. The season pays its worst day once."""
    return np.maximum(np.minimum(entitlement - paid, sum_insured - paid), 0)


def severity(damage: np.ndarray) -> np.ndarray:
    labels = np.full(len(damage), CATASTROPHIC, dtype=object)
    for limit, label in reversed(SEVERITY_BANDS):
        labels = np.where(damage < limit, label, labels)
    return labels


def assessment_id(plot_id: str, policy_id: str, day: dt.date, method_version: str = METHOD_VERSION) -> str:
    """Stable id: rerunning a day for the same plot, policy and method gives the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{plot_id}\x1f{policy_id}\x1f{day.isoformat()}\x1f{method_version}"))


def assessed_at(day: dt.date) -> dt.datetime:
    """The last second of the assessed UTC day: a function of the day, never of the clock."""
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=dt.UTC)


def _shares(frame: pd.DataFrame, column: str) -> np.ndarray:
    return np.array(
        [share(v, f"plot {p}: {column}") for p, v in zip(frame["plot_id"], frame[column], strict=True)], dtype=object
    )


def _days(plot_id: str, value: Any, where: str) -> int:
    """A whole number of days (0 when absent)."""
    if value is None or (isinstance(value, float) and value != value):
        return 0
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    raise AssessmentInputError(f"plot {plot_id}: {where}={value!r} is not a whole number of days")


def _present(values: np.ndarray) -> np.ndarray:
    return np.array([v is not None for v in values], dtype=bool)


def _filled(values: np.ndarray) -> np.ndarray:
    return np.array([_ZERO if v is None else v for v in values], dtype=object)


def _term_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-plot policy parameters; terms shared by many plots (the same dict) are read once."""
    cache: dict[int, dict] = {}
    rows = []
    for plot_id, terms in zip(frame["plot_id"], frame["terms"], strict=True):
        key = id(terms)
        if key not in cache:
            try:
                sat = terms["satellite"]
                cache[key] = {
                    "w_weather": share(terms["weights"]["weather"]),
                    "w_satellite": share(terms["weights"]["satellite"]),
                    "zscore": sat["method"] == "zscore",
                    "sat_trigger": share(sat["trigger"]),
                    "sat_exit": share(sat["exit"]),
                    "max_age_days": int(sat["max_age_days"]),
                    "min_valid_fraction": share(sat["min_valid_fraction"]),
                    "calendar": [int(terms["crop_calendar"][s]) for s in GROWTH_STAGES],
                    "sensitivity": [share(terms["stage_sensitivity"][s]) for s in GROWTH_STAGES],
                    "trigger_threshold": share(terms["trigger_threshold"]),
                    "deductible": share(terms["deductible"]),
                    "franchise": share(terms["franchise"]),
                }
            except (KeyError, TypeError, AssessmentInputError) as error:
                raise AssessmentInputError(f"plot {plot_id}: policy terms unusable ({error!r})") from None
            if cache[key]["sat_trigger"] == cache[key]["sat_exit"]:
                raise AssessmentInputError(f"plot {plot_id}: satellite trigger equals exit {sat['exit']}")
        rows.append(cache[key])
    return {name: np.array([r[name] for r in rows], dtype=object) for name in rows[0]} if rows else {}


def _growth_stage(frame: pd.DataFrame, calendars: np.ndarray) -> np.ndarray:
    """Stage index (-1 before sowing) per plot, from days since sowing and the policy's crop calendar."""
    since = np.array([(d - s).days for d, s in zip(frame["day"], frame["sowing_date"], strict=True)], dtype=int)
    table = np.array(list(calendars), dtype=int).reshape(len(frame), len(GROWTH_STAGES))
    return (since[:, None] >= table).sum(axis=1) - 1


@dataclass(frozen=True)
class _Source:
    """One damage source over the plots: which plots it serves, its damage share (read only where it
    serves: elsewhere its weight is 0), and why it serves none of the others, as (reason, plots) pairs."""

    used: np.ndarray
    damage: np.ndarray
    unused_reasons: tuple[tuple[str, np.ndarray], ...]


@dataclass(frozen=True)
class _SatelliteSource(_Source):
    valid_fraction: np.ndarray  # the NDVI's share of valid pixels (0 without NDVI): its quality in the confidence


@dataclass(frozen=True)
class _Weights:
    """The policy's source weights renormalised over the sources each plot has."""

    weather: np.ndarray
    satellite: np.ndarray
    assessable: np.ndarray  # a source with a positive weight: the plot has a damage


@dataclass(frozen=True)
class _StageDamage:
    stage_index: np.ndarray  # into GROWTH_STAGES
    multiplier: np.ndarray  # the stage's sensitivity
    damage: np.ndarray  # share, at most 1
    triggered: np.ndarray  # damage at or above the policy's trigger threshold


def _weather_source(frame: pd.DataFrame) -> _Source:
    """The weather stress as the weather damage. A stress outside 0..1 is a broken upstream row: that
    plot's weather source is dropped, and its reason says why."""
    stress = _shares(frame, "weather_stress")
    implausible = np.array([s is not None and not _ZERO <= s <= _ONE for s in stress], dtype=bool)
    stress = np.where(implausible, None, stress)
    used = _present(stress)
    return _Source(
        used,
        _filled(stress),
        (
            ("weather: weather_stress outside 0..1", implausible),
            ("weather: no weather stress (see weather_indices.missing_reason)", ~used & ~implausible),
        ),
    )


def _satellite_source(frame: pd.DataFrame, terms: dict[str, np.ndarray]) -> _SatelliteSource:
    """The satellite damage: the policy's layer over the NDVI's decline from its baseline (or its z-score),
    for plots with a recent enough NDVI with enough valid pixels, against a usable baseline."""
    ndvi, valid = _shares(frame, "ndvi_mean"), _shares(frame, "ndvi_valid_fraction")
    base_mean, base_std = _shares(frame, "baseline_mean"), _shares(frame, "baseline_std")
    age = np.array(
        [
            None if d is None or d != d else (day - d).days
            for d, day in zip(frame["ndvi_day"], frame["day"], strict=True)
        ],
        dtype=object,
    )
    has_ndvi = _present(ndvi) & _present(valid)
    fresh = np.array([a is not None and 0 <= a <= m for a, m in zip(age, terms["max_age_days"], strict=True)])
    valid_0, ndvi_0, mean_0 = _filled(valid), _filled(ndvi), _filled(base_mean)
    enough = has_ndvi & (valid_0 >= terms["min_valid_fraction"])
    zscore = terms["zscore"].astype(bool)
    scale = np.where(zscore, _filled(base_std), mean_0)
    has_base = _present(base_mean) & (~zscore | _present(base_std)) & (scale > _ZERO)
    used = has_ndvi & fresh & enough & has_base
    safe_scale = np.where(used, scale, _ONE)
    # decline (baseline - NDVI) / baseline, or z = (NDVI - mean) / std
    x = _q(np.where(zscore, ndvi_0 - mean_0, mean_0 - ndvi_0) / safe_scale)
    return _SatelliteSource(
        used,
        layer_share(x, terms["sat_trigger"], terms["sat_exit"]),
        (
            ("satellite: no NDVI within max_age_days", ~(has_ndvi & fresh)),
            ("satellite: NDVI valid fraction below the minimum", has_ndvi & fresh & ~enough),
            ("satellite: no usable NDVI baseline", has_ndvi & fresh & enough & ~has_base),
        ),
        valid_0,
    )


def _missing_reasons(*sources: _Source) -> list[str | None]:
    """Per plot, why sources are missing ("; "-joined, in the sources' order), or None."""
    reasons = [reason for source in sources for reason in source.unused_reasons]
    texts = [text for text, _ in reasons]
    return [
        "; ".join(text for text, missing in zip(texts, flags, strict=True) if missing) or None
        for flags in zip(*(plots for _, plots in reasons), strict=True)
    ]


def _weights(terms: dict[str, np.ndarray], weather: _Source, satellite: _Source) -> _Weights:
    """The policy's weather and satellite weights over the sources a plot has, renormalised to sum to 1."""
    w_w = np.where(weather.used, terms["w_weather"], _ZERO)
    w_s = np.where(satellite.used, terms["w_satellite"], _ZERO)
    total = w_w + w_s
    assessable = total > _ZERO
    safe_total = np.where(assessable, total, _ONE)
    return _Weights(_q(w_w / safe_total), _q(w_s / safe_total), assessable)


def _window_completeness(frame: pd.DataFrame) -> np.ndarray:
    """The share of the weather index window's days with data (1 for an empty window)."""
    plot_ids = frame["plot_id"]
    window = [_days(p, v, "weather.window_days") for p, v in zip(plot_ids, frame["weather_window_days"], strict=True)]
    gaps = [_days(p, v, "weather.missing_days") for p, v in zip(plot_ids, frame["weather_missing_days"], strict=True)]
    shares: dict[tuple[int, int], Decimal] = {}  # few distinct (window, gaps) pairs
    for pair in set(zip(window, gaps, strict=True)):
        shares[pair] = _ONE if pair[0] <= 0 else _q(np.array([Decimal(pair[0] - pair[1]) / Decimal(pair[0])]))[0]
    return np.array([shares[pair] for pair in zip(window, gaps, strict=True)], dtype=object)


def _confidence(
    frame: pd.DataFrame, terms: dict[str, np.ndarray], weather: _Source, satellite: _SatelliteSource
) -> np.ndarray:
    """The sources' original weights times their quality (window completeness, valid pixels), to 4 places."""
    completeness = _window_completeness(frame)
    confidence = np.where(weather.used, terms["w_weather"] * completeness, _ZERO) + np.where(
        satellite.used, terms["w_satellite"] * np.minimum(satellite.valid_fraction, _ONE), _ZERO
    )
    return np.array([c.quantize(_CONFIDENCE, context=_CONTEXT) for c in confidence], dtype=object)


def _stage_damage(
    frame: pd.DataFrame, terms: dict[str, np.ndarray], weights: _Weights, weather: _Source, satellite: _Source
) -> _StageDamage:
    """The weighted sources' damage times the growth stage's sensitivity, at most 1, against the trigger."""
    composite = _q(weights.weather * weather.damage + weights.satellite * satellite.damage)
    stage_index = _growth_stage(frame, terms["calendar"])
    if (stage_index < 0).any():
        first = int(np.argmax(stage_index < 0))
        raise AssessmentInputError(f"plot {frame['plot_id'][first]}: day {frame['day'][first]} is before sowing")
    multiplier = np.array([s[i] for s, i in zip(terms["sensitivity"], stage_index, strict=True)], dtype=object)
    damage = np.minimum(_q(composite * multiplier), _ONE_SHARE)
    return _StageDamage(stage_index, multiplier, damage, damage >= terms["trigger_threshold"])


def _payout_share(damage: np.ndarray, terms: dict[str, np.ndarray]) -> np.ndarray:
    """The share of the sum insured paid: the damage above the deductible, or all of it at or above a franchise."""
    has_franchise = _present(terms["franchise"])
    franchise_share = np.where(damage >= _filled(terms["franchise"]), damage, _ZERO)
    deductible_share = np.maximum(damage - _filled(terms["deductible"]), _ZERO)
    return np.where(has_franchise, franchise_share, deductible_share)


def _entitlement_and_payout(
    frame: pd.DataFrame, payout_share: np.ndarray, pays: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Micro-USDC per plot: the entitlement (the payout share of the sum insured, at most the maximum
    payout, where `pays`) and what this assessment adds to its season (`season_payout`)."""
    sum_insured = frame["sum_insured_micro_usdc"].to_numpy(dtype=object)
    max_payout = frame["max_payout_micro_usdc"].to_numpy(dtype=object)
    paid = frame["season_paid_micro_usdc"].to_numpy(dtype=object)
    entitlement = np.where(pays, np.minimum(money(sum_insured, payout_share), max_payout), 0)
    return entitlement, season_payout(entitlement, sum_insured, paid)


def _assessment_rows(
    frame: pd.DataFrame,
    weather: _Source,
    satellite: _Source,
    weights: _Weights,
    confidence: np.ndarray,
    stage: _StageDamage,
    entitlement: np.ndarray,
    payout: np.ndarray,
) -> pd.DataFrame:
    """The steps' results as rows of `damage_assessments`: a source's values only where it was used, the
    damage and money only where the plot is assessable."""
    assessable = weights.assessable
    ends: dict[dt.date, dt.datetime] = {}
    return pd.DataFrame(
        {
            "assessment_id": [
                assessment_id(p, q, d)
                for p, q, d in zip(frame["plot_id"], frame["policy_id"], frame["day"], strict=True)
            ],
            "plot_id": frame["plot_id"],
            "policy_id": frame["policy_id"],
            "day": frame["day"],
            "method_version": METHOD_VERSION,
            "weather_damage": np.where(weather.used, weather.damage, None),
            "satellite_damage": np.where(satellite.used, satellite.damage, None),
            "sources": [
                [s for s, used in (("weather", w), ("satellite", s_)) if used]
                for w, s_ in zip(weather.used, satellite.used, strict=True)
            ],
            "weights": [
                {k: str(v) for k, v, used in (("weather", a, uw), ("satellite", b, us)) if used}
                for a, b, uw, us in zip(weights.weather, weights.satellite, weather.used, satellite.used, strict=True)
            ],
            "confidence": confidence,
            "growth_stage": np.array(GROWTH_STAGES, dtype=object)[stage.stage_index],
            "stage_multiplier": stage.multiplier,
            "damage": np.where(assessable, stage.damage, None),
            "severity": np.where(assessable, severity(stage.damage), None),
            "triggered": stage.triggered & assessable,
            "entitlement_micro_usdc": entitlement.astype(object),
            "payout_micro_usdc": np.where(assessable, payout, 0).astype(object),
            "damage_bps": np.where(assessable, to_bps(stage.damage), None),
            "weather_damage_bps": np.where(weather.used, to_bps(weather.damage), None),
            "satellite_damage_bps": np.where(satellite.used, to_bps(satellite.damage), None),
            "assessed_at": [ends.setdefault(d, assessed_at(d)) for d in frame["day"]],
            "missing_reason": _missing_reasons(weather, satellite),
        },
        dtype=object,  # keeps None as None and Decimals, ints and bools as they are
    )


def assess(frame: pd.DataFrame) -> pd.DataFrame:
    """One assessment per row of `frame` (columns INPUT_COLUMNS), as rows of `damage_assessments`.

    Rows with neither a weather stress nor usable imagery get damage None and their reason; the caller
    stores only assessed rows. Shares in the output are Decimals, money and basis points ints.
    """
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise AssessmentInputError(f"assessment inputs lack column(s) {missing}")
    frame = frame.reset_index(drop=True)
    if len(frame) == 0:
        return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    with localcontext(_CONTEXT):
        terms = _term_arrays(frame)
        weather = _weather_source(frame)
        satellite = _satellite_source(frame, terms)
        weights = _weights(terms, weather, satellite)
        confidence = _confidence(frame, terms, weather, satellite)
        stage = _stage_damage(frame, terms, weights, weather, satellite)
        pays = stage.triggered & weights.assessable
        entitlement, payout = _entitlement_and_payout(frame, _payout_share(stage.damage, terms), pays)
    return _assessment_rows(frame, weather, satellite, weights, confidence, stage, entitlement, payout)


# -- one plot's inputs as JSON (what the assessment stores and a proof carries) ---------------------------


def _date(value: Any, where: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise AssessmentInputError(f"{where}={value!r} is not a YYYY-MM-DD date") from None


def season_paid(doc: Mapping[str, Any], where: str) -> int:
    """What the plot-season had been paid when `doc` was assessed: the sum of the paying assessments it
    counts, each of another day or policy of the same plot within the season (refused otherwise)."""
    paid = doc["season_paid"]
    own = assessment_id(doc["plot_id"], doc["policy_id"], _date(doc["day"], f"{where}: day"))
    first, last = (_date(doc[k], f"{where}: {k}") for k in ("sowing_date", "season_end"))
    counted = 0
    for entry in paid["assessments"]:
        amount, day = int(entry["payout_micro_usdc"]), _date(entry["day"], f"{where}: season_paid day")
        if entry["assessment_id"] == own or amount <= 0 or not first <= day <= last:
            raise AssessmentInputError(
                f"{where}: season_paid counts {entry!r}, not another paying assessment of the season {first}..{last}"
            )
        counted += amount
    if int(paid["micro_usdc"]) != counted:
        raise AssessmentInputError(
            f"{where}: season_paid.micro_usdc={paid['micro_usdc']} is not the sum {counted}"
            " of the assessments it counts"
        )
    return counted


def frame_from_inputs(inputs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The plain-value frame `assess` takes, from per-plot inputs documents (see `assess_one`)."""
    rows = []
    for doc in inputs:
        where = f"plot {doc.get('plot_id')!r}"
        if doc.get("method_version") != METHOD_VERSION:
            raise AssessmentInputError(
                f"{where}: inputs of method {doc.get('method_version')!r}, this code computes {METHOD_VERSION!r}"
            )
        weather, ndvi, baseline = doc.get("weather") or {}, doc.get("ndvi") or {}, doc.get("baseline") or {}
        rows.append(
            {
                "plot_id": doc["plot_id"],
                "policy_id": doc["policy_id"],
                "day": _date(doc["day"], f"{where}: day"),
                "sowing_date": _date(doc["sowing_date"], f"{where}: sowing_date"),
                "sum_insured_micro_usdc": int(doc["sum_insured_micro_usdc"]),
                "max_payout_micro_usdc": int(doc["max_payout_micro_usdc"]),
                "season_paid_micro_usdc": season_paid(doc, where),
                "weather_stress": weather.get("weather_stress"),
                "weather_window_days": weather.get("window_days"),
                "weather_missing_days": weather.get("missing_days"),
                "ndvi_day": _date(ndvi.get("day"), f"{where}: ndvi.day"),
                "ndvi_mean": ndvi.get("ndvi_mean"),
                "ndvi_valid_fraction": ndvi.get("valid_fraction"),
                "baseline_mean": baseline.get("ndvi_mean"),
                "baseline_std": baseline.get("ndvi_std"),
                "terms": doc["terms"],
            }
        )
    return pd.DataFrame(rows, columns=list(INPUT_COLUMNS), dtype=object)


def json_value(value: Any) -> Any:
    """An output value in JSON form: Decimals as strings, dates ISO, numpy scalars as Python values."""
    if isinstance(value, Decimal):
        return format(value, "f")  # positional: str() gives "0E-12" for a zero read back from numeric(.., 12)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def assess_inputs(inputs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """`assess` over inputs documents: the asset's path."""
    return assess(frame_from_inputs(inputs))


def assess_one(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """One plot's assessment recomputed from its stored `inputs` document, outputs in JSON form.

    The document holds `method_version`, `plot_id`, `policy_id`, `beneficiary`, `day`, `sowing_date`,
    `season_end`, the money (`sum_insured_micro_usdc`, `max_payout_micro_usdc`, and `season_paid`: the
    `micro_usdc` the season's other assessments had paid and those `assessments`), `terms` (DAMAGE_TERMS),
    `weather` (`weather_stress`, `window_days`, `missing_days`, ...) or null, `ndvi` (`day`, `ndvi_mean`,
    `valid_fraction`, ...) or null and `baseline` (`ndvi_mean`, `ndvi_std`, ...) or null; numbers as strings.
    """
    row = assess_inputs([inputs]).iloc[0]
    return {column: json_value(row[column]) for column in OUTPUT_COLUMNS}


# -- the plot-season ledger: which payouts an assessment counts as already paid -------------------------


@dataclass(frozen=True)
class SeasonEntry:
    """One stored assessment of a plot-season, as the season's ledger sees it. `settled` entries (with a
    published proof or an archive copy) are final; the others are provisional and may be re-derived."""

    assessment_id: str
    day: dt.date
    entitlement_micro_usdc: int
    sum_insured_micro_usdc: int
    payout_micro_usdc: int
    settled: bool
    season_paid: dict | None = None  # what its inputs record (see season_paid_document)

    @property
    def order(self) -> tuple[dt.date, str]:
        return self.day, self.assessment_id


def season_paid_document(entries: Iterable[SeasonEntry]) -> dict:
    """The `season_paid` an inputs document records: the paying entries, by day, and their sum."""
    paying = sorted((e for e in entries if e.payout_micro_usdc > 0), key=lambda e: e.order)
    return {
        "micro_usdc": sum(e.payout_micro_usdc for e in paying),
        "assessments": [
            {"assessment_id": e.assessment_id, "day": e.day.isoformat(), "payout_micro_usdc": e.payout_micro_usdc}
            for e in paying
        ],
    }


def counted_before(entries: Iterable[SeasonEntry], day: dt.date, own_id: str) -> list[SeasonEntry]:
    """What an assessment of `day` counts as paid: every settled entry of the season, whatever its day, and
    the provisional ones before it (by day, then id). So days assessed in any order end with the same
    payouts as days assessed in order, and nothing settled is ever paid again."""
    own = (day, own_id)
    return [e for e in entries if e.assessment_id != own_id and (e.settled or e.order < own)]


def rederive_after(entries: Sequence[SeasonEntry], day: dt.date, own_id: str) -> list[SeasonEntry]:
    """The provisional entries after (`day`, `own_id`), re-derived in order from the entries before them
    once that assessment changed: those whose payout or season_paid changes, with the new values."""
    current = {e.assessment_id: e for e in entries}
    changed = []
    for entry in sorted((e for e in entries if not e.settled and e.order > (day, own_id)), key=lambda e: e.order):
        counted = counted_before(current.values(), entry.day, entry.assessment_id)
        paid = sum(e.payout_micro_usdc for e in counted)
        payout = int(season_payout(entry.entitlement_micro_usdc, entry.sum_insured_micro_usdc, paid))
        record = season_paid_document(counted)
        if payout != entry.payout_micro_usdc or record != entry.season_paid:
            current[entry.assessment_id] = replace(entry, payout_micro_usdc=payout, season_paid=record)
            changed.append(current[entry.assessment_id])
    return changed
