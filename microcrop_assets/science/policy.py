"""Policy terms: every parameter a payout depends on, with the original MicroCrop defaults.

A plot's terms are the defaults below overlaid with whatever its policy states. Numbers are kept
as Decimal so that terms read from a file, stored and put in a proof are exactly what was signed.
"""

import copy
import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

GROWTH_STAGES = ("germination", "vegetative", "flowering", "fruiting", "maturity", "senescence")

# Days after sowing at which each stage starts. Typical East African rain-fed calendars.
CROP_CALENDARS: dict[str, dict[str, int]] = {
    "maize": {"germination": 0, "vegetative": 10, "flowering": 60, "fruiting": 80, "maturity": 110, "senescence": 135},
    "sorghum": {
        "germination": 0,
        "vegetative": 10,
        "flowering": 55,
        "fruiting": 75,
        "maturity": 100,
        "senescence": 120,
    },
    "beans": {"germination": 0, "vegetative": 7, "flowering": 35, "fruiting": 50, "maturity": 70, "senescence": 85},
    "wheat": {"germination": 0, "vegetative": 12, "flowering": 65, "fruiting": 85, "maturity": 110, "senescence": 130},
    "rice": {"germination": 0, "vegetative": 15, "flowering": 70, "fruiting": 90, "maturity": 115, "senescence": 135},
}
CROPS = tuple(CROP_CALENDARS)

PERILS = ("drought", "flood", "heat")

# The indices a weather layer may be written on (columns of `weather_indices`).
LAYER_INDICES = (
    "worst_14d_rain_mm",
    "rain_30d_mm",
    "cdd",
    "rx1day_mm",
    "rx3day_mm",
    "rx5day_mm",
    "tmax_max_c",
    "heat_days",
    "heat_degree_days",
    "spi_1",
    "spi_3",
)

DEFAULT_TERMS: dict[str, Any] = {
    # weather layers (science.md section 3); deficit when trigger > exit, excess when trigger < exit
    "layers": {
        "drought_rain": {"peril": "drought", "index": "worst_14d_rain_mm", "trigger": "30", "exit": "5"},
        "drought_dry_spell": {"peril": "drought", "index": "cdd", "trigger": "7", "exit": "14"},
        "flood_daily": {"peril": "flood", "index": "rx1day_mm", "trigger": "150", "exit": "300"},
        "flood_3day": {"peril": "flood", "index": "rx3day_mm", "trigger": "200", "exit": "400"},
        "heat_tmax": {"peril": "heat", "index": "tmax_max_c", "trigger": "35", "exit": "40"},
        "heat_degree_days": {"peril": "heat", "index": "heat_degree_days", "trigger": "0", "exit": "50"},
    },
    # weather_stress = min(1, sum of peril weight x peril stress); a peril's stress is its worst layer
    "peril_weights": {"drought": "1", "flood": "1", "heat": "1"},
    "heat_threshold_c": "35",
    "gdd_base_c": "10",
    "max_missing_share": "0.1",
    "spi": {"min_calibration_years": 30, "gamma_parameters": None},
    # satellite damage: NDVI decline from baseline 0 -> 0, 0.4 -> 1 (or z-score, IBLI: trigger -0.842,
    # exit -2.326); only a daily NDVI at most max_age_days old with enough valid pixels counts
    "satellite": {
        "method": "decline",
        "trigger": "0",
        "exit": "0.4",
        "max_age_days": 14,
        "min_valid_fraction": "0.5",
    },
    "weights": {"weather": "0.6", "satellite": "0.4"},
    "stage_sensitivity": {
        "germination": "1.2",
        "vegetative": "1.0",
        "flowering": "1.5",
        "fruiting": "1.3",
        "maturity": "0.8",
        "senescence": "0.5",
    },
    "crop_calendar": None,  # None: the crop's default calendar
    "trigger_threshold": "0.3",
    "stress_trigger": "0.5",
    "deductible": "0.10",
    "franchise": None,
}

_SHARES = ("max_missing_share", "trigger_threshold", "stress_trigger", "deductible", "franchise")


class PolicyTermsError(ValueError):
    """A policy term is unknown or out of range; `field` is its dotted path."""

    def __init__(self, field: str, value: Any, reason: str):
        super().__init__(f"policy term {field}={value!r}: {reason}")
        self.field, self.value, self.reason = field, value, reason


def to_decimal(value: Any, field: str) -> Decimal:
    """JSON numbers and numeric strings both become exact decimals (floats via their repr)."""
    if isinstance(value, bool) or value is None:
        raise PolicyTermsError(field, value, "is not a number")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise PolicyTermsError(field, value, "is not a number") from None
    if not number.is_finite():
        raise PolicyTermsError(field, value, "is not a finite number")
    return number


def _overlay(defaults: Any, given: Any, path: str) -> Any:
    if isinstance(defaults, dict) and path != "layers" and path != "crop_calendar":
        if not isinstance(given, dict):
            raise PolicyTermsError(path, given, "must be an object")
        merged = copy.deepcopy(defaults)
        for key, value in given.items():
            if key not in defaults:
                raise PolicyTermsError(f"{path}.{key}" if path else key, value, "unknown policy term")
            merged[key] = _overlay(defaults[key], value, f"{path}.{key}" if path else key)
        return merged
    return copy.deepcopy(given)


def _check_share(field: str, value: Any) -> str:
    number = to_decimal(value, field)
    if not Decimal(0) <= number <= Decimal(1):
        raise PolicyTermsError(field, value, "must be between 0 and 1")
    return str(number)


def resolve_terms(crop: str, given: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `given`, validated; numbers normalised to decimal strings (JSON-safe)."""
    given = given or {}
    terms = _overlay(DEFAULT_TERMS, given, "")
    if given.get("franchise") is not None and "deductible" not in given:
        terms["deductible"] = None  # a franchise replaces the default deductible
    for field in _SHARES:
        if terms[field] is not None:
            terms[field] = _check_share(field, terms[field])
    if terms["franchise"] is not None and terms["deductible"] is not None and Decimal(terms["deductible"]) > 0:
        raise PolicyTermsError("franchise", terms["franchise"], "a policy has a deductible or a franchise, not both")

    layers = terms["layers"]
    if not isinstance(layers, dict) or not layers:
        raise PolicyTermsError("layers", layers, "must be a non-empty object of named layers")
    for name, layer in layers.items():
        where = f"layers.{name}"
        if not isinstance(layer, dict):
            raise PolicyTermsError(where, layer, "must be an object with peril, index, trigger and exit")
        unknown = set(layer) - {"peril", "index", "trigger", "exit"}
        if unknown:
            raise PolicyTermsError(f"{where}.{sorted(unknown)[0]}", layer[sorted(unknown)[0]], "unknown policy term")
        if layer.get("peril") not in PERILS:
            raise PolicyTermsError(f"{where}.peril", layer.get("peril"), f"must be one of {', '.join(PERILS)}")
        if layer.get("index") not in LAYER_INDICES:
            raise PolicyTermsError(f"{where}.index", layer.get("index"), f"must be one of {', '.join(LAYER_INDICES)}")
        trigger = to_decimal(layer.get("trigger"), f"{where}.trigger")
        exit_ = to_decimal(layer.get("exit"), f"{where}.exit")
        if trigger == exit_:
            raise PolicyTermsError(f"{where}.exit", layer.get("exit"), "must differ from the trigger")
        layer["trigger"], layer["exit"] = str(trigger), str(exit_)

    for group in ("peril_weights", "weights", "stage_sensitivity"):
        for key, value in terms[group].items():
            number = to_decimal(value, f"{group}.{key}")
            if number < 0:
                raise PolicyTermsError(f"{group}.{key}", value, "must not be negative")
            terms[group][key] = str(number)
    if sum(Decimal(v) for v in terms["weights"].values()) != 1:
        raise PolicyTermsError("weights", terms["weights"], "weather and satellite weights must add up to 1")

    satellite = terms["satellite"]
    if satellite["method"] not in ("decline", "zscore"):
        raise PolicyTermsError("satellite.method", satellite["method"], "must be 'decline' or 'zscore'")
    for key in ("trigger", "exit"):
        satellite[key] = str(to_decimal(satellite[key], f"satellite.{key}"))
    if satellite["trigger"] == satellite["exit"]:
        raise PolicyTermsError("satellite.exit", satellite["exit"], "must differ from the trigger")
    age = satellite["max_age_days"]
    if not isinstance(age, int) or isinstance(age, bool) or age < 0:
        raise PolicyTermsError("satellite.max_age_days", age, "must be a whole number of days >= 0")
    satellite["min_valid_fraction"] = _check_share("satellite.min_valid_fraction", satellite["min_valid_fraction"])

    for field in ("heat_threshold_c", "gdd_base_c"):
        terms[field] = str(to_decimal(terms[field], field))

    calendar = terms["crop_calendar"] or CROP_CALENDARS[crop]
    terms["crop_calendar"] = _check_calendar(calendar)
    return terms


def _check_calendar(calendar: Any) -> dict[str, int]:
    if not isinstance(calendar, dict):
        raise PolicyTermsError("crop_calendar", calendar, "must map growth stages to days after sowing")
    unknown = set(calendar) - set(GROWTH_STAGES)
    if unknown:
        stage = sorted(unknown)[0]
        raise PolicyTermsError(f"crop_calendar.{stage}", calendar[stage], "unknown growth stage")
    if set(calendar) != set(GROWTH_STAGES):
        missing = [s for s in GROWTH_STAGES if s not in calendar]
        raise PolicyTermsError("crop_calendar", calendar, f"misses stages {', '.join(missing)}")
    days = [calendar[s] for s in GROWTH_STAGES]
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in days) or days[0] != 0:
        raise PolicyTermsError("crop_calendar", calendar, "days must be whole numbers, starting at 0")
    if days != sorted(days) or len(set(days)) != len(days):
        raise PolicyTermsError("crop_calendar", calendar, "stages must start on strictly increasing days")
    return {s: calendar[s] for s in GROWTH_STAGES}


def growth_stage(calendar: dict[str, int], sowing_date: dt.date, day: dt.date) -> str | None:
    """The stage `day` falls in, or None before sowing."""
    since = (day - sowing_date).days
    if since < 0:
        return None
    current = GROWTH_STAGES[0]
    for stage in GROWTH_STAGES:
        if since >= calendar[stage]:
            current = stage
    return current


def stage_start(calendar: dict[str, int], sowing_date: dt.date, day: dt.date) -> dt.date | None:
    """First day of the stage `day` falls in (the current phase of phase-based indices)."""
    stage = growth_stage(calendar, sowing_date, day)
    return None if stage is None else sowing_date + dt.timedelta(days=calendar[stage])
