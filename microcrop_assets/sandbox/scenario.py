"""Weather scenarios: drought, flood and heat-wave events switched on by date and area.

File format (JSON):

    {"events": [{"kind": "drought", "start": "2025-06-01", "end": "2025-07-31",
                 "area": {"bbox": [34.6, 0.15, 34.9, 0.45]}, "intensity": 1.0, "name": "optional"}]}

`area` is {"bbox": [min_lon, min_lat, max_lon, max_lat]} or a GeoJSON Polygon / MultiPolygon
(bare geometry, {"geometry": ...} or a Feature). Dates are UTC days, both ends included.
Intensity (default 1, from 0 to 3) scales the effect. Effects at a station or plot inside the area:
- drought: rain x max(0, 1 - 0.97 intensity) (almost none at 1), Tmax +2..3 C, drier air;
- flood: every day wet and rain x (1 + 1.5 intensity), every fourth day from the start an extreme day of
  (160..250 mm) x intensity;
- heat_wave: Tmax +6..10 C (x intensity) and at least 36..38 C at intensity 1 (33 + 3 x intensity + 0..2),
  Tmin +2..3 C, rain x 0.2.
Events add up where they overlap. Stations outside every area are untouched, bit for bit.
"""

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box, shape

from microcrop_assets.sandbox.seeding import unit

KINDS = ("drought", "flood", "heat_wave")
SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"  # example scenario files
MAX_INTENSITY = 3.0


class ScenarioError(ValueError):
    """A scenario file or event that cannot be used, naming where and why."""


@dataclass(frozen=True)
class ScenarioEvent:
    kind: str
    start: dt.date
    end: dt.date
    area: Any  # shapely geometry, lon/lat
    intensity: float = 1.0
    name: str = ""

    def covers(self, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
        """Which points lie in the area (its boundary included)."""
        return shapely.intersects_xy(self.area, lons, lats)


@dataclass(frozen=True)
class WeatherEffects:
    """Per point and day: rain = max(rain x rain_factor, rain_floor), Tmax = max(Tmax + tmax_add, tmax_floor);
    Tmin and dew point shifted."""

    rain_factor: np.ndarray
    rain_floor: np.ndarray
    tmax_add: np.ndarray
    tmax_floor: np.ndarray
    tmin_add: np.ndarray
    dewpoint_add: np.ndarray


@dataclass(frozen=True)
class Scenario:
    events: tuple[ScenarioEvent, ...] = ()
    source: str = ""

    def effects(self, seed: int, lons: np.ndarray, lats: np.ndarray, first: dt.date, days: int) -> WeatherEffects:
        shape_ = (len(lons), days)
        effects = WeatherEffects(
            rain_factor=np.ones(shape_),
            rain_floor=np.zeros(shape_),
            tmax_add=np.zeros(shape_),
            tmax_floor=np.full(shape_, -np.inf),
            tmin_add=np.zeros(shape_),
            dewpoint_add=np.zeros(shape_),
        )
        for number, event in enumerate(self.events):
            lo = max((event.start - first).days, 0)
            hi = min((event.end - first).days + 1, days)
            if lo >= hi:
                continue
            inside = event.covers(lons, lats)
            if not inside.any():
                continue
            rows = np.flatnonzero(inside)[:, None]
            span = np.arange(lo, hi)
            # a day-to-day wobble of the event's strength, shared by every point of the area
            wobble = np.array([unit(seed, "scenario", number, first.toordinal() + int(d)) for d in span])
            k = event.intensity
            if event.kind == "drought":
                effects.rain_factor[rows, span] *= max(0.0, 1 - 0.97 * k)
                effects.tmax_add[rows, span] += k * (2 + wobble)
                effects.tmin_add[rows, span] += k * 0.8
                effects.dewpoint_add[rows, span] -= k * 3
            elif event.kind == "flood":
                effects.rain_factor[rows, span] *= 1 + 1.5 * k
                since_start = (first - event.start).days + span
                extreme = since_start % 4 == 0
                floor = np.where(extreme, (160 + 90 * wobble) * k, 15 * k)
                effects.rain_floor[rows, span] = np.maximum(effects.rain_floor[rows, span], floor)
                effects.tmax_add[rows, span] -= k * 1.5
            else:  # heat_wave
                effects.tmax_add[rows, span] += k * (6 + 4 * wobble)
                effects.tmax_floor[rows, span] = np.maximum(effects.tmax_floor[rows, span], 33 + 3 * k + 2 * wobble)
                effects.tmin_add[rows, span] += k * (2 + wobble)
                effects.rain_factor[rows, span] *= 0.2
        return effects


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"scenario file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ScenarioError(f"scenario file {str(path)!r} is not readable JSON: {error}") from None
    return parse_scenario(document, source=str(path))


def parse_scenario(document: Any, source: str = "scenario") -> Scenario:
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise ScenarioError(f'{source}: expected an object {{"events": [...]}}, got {_short(document)}')
    # "season" (the season demo's own window, see microcrop_assets/season) is not the sandbox's business
    unknown = sorted(set(document) - {"events", "description", "name", "season"})
    if unknown:
        raise ScenarioError(f"{source}: unknown top-level key(s) {unknown}")
    events = tuple(_parse_event(raw, f"{source}: events[{index}]") for index, raw in enumerate(document["events"]))
    return Scenario(events=events, source=source)


def _parse_event(raw: Any, where: str) -> ScenarioEvent:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: expected an object, got {_short(raw)}")
    unknown = sorted(set(raw) - {"kind", "start", "end", "area", "intensity", "name"})
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {unknown}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ScenarioError(f"{where}: kind={kind!r} is not one of {list(KINDS)}")
    start = _date(raw.get("start"), f"{where}.start")
    end = _date(raw.get("end"), f"{where}.end")
    if end < start:
        raise ScenarioError(f"{where}: end {end} is before start {start}")
    intensity = raw.get("intensity", 1.0)
    if (
        isinstance(intensity, bool)
        or not isinstance(intensity, int | float)
        or not math.isfinite(intensity)
        or not 0 < intensity <= MAX_INTENSITY
    ):
        raise ScenarioError(f"{where}.intensity={intensity!r} must be a number in (0, {MAX_INTENSITY}]")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ScenarioError(f"{where}.name={name!r} must be a string")
    return ScenarioEvent(kind, start, end, _area(raw.get("area"), f"{where}.area"), float(intensity), name)


def _date(value: Any, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"{where}={_short(value)} is not a YYYY-MM-DD date") from None


def _area(raw: Any, where: str):
    if not isinstance(raw, dict):
        raise ScenarioError(f'{where}: expected {{"bbox": [min_lon, min_lat, max_lon, max_lat]}} or a GeoJSON polygon')
    if "bbox" in raw:
        bbox = raw["bbox"]
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
        ):
            raise ScenarioError(f"{where}.bbox={_short(bbox)} must be 4 numbers [min_lon, min_lat, max_lon, max_lat]")
        min_lon, min_lat, max_lon, max_lat = bbox
        if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
            raise ScenarioError(
                f"{where}.bbox={bbox}: need -180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90"
            )
        return box(min_lon, min_lat, max_lon, max_lat)
    geometry = raw.get("geometry", raw) if raw.get("type") in ("Feature", None) else raw
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise ScenarioError(f"{where}: expected a bbox or a GeoJSON Polygon/MultiPolygon, got {_short(raw)}")
    try:
        area = shape(geometry)
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError) as error:
        raise ScenarioError(f"{where}: unreadable GeoJSON {geometry.get('type')}: {error}") from None
    if area.is_empty or not area.is_valid:
        raise ScenarioError(f"{where}: the polygon is empty or invalid ({shapely.validation.explain_validity(area)})")
    return area


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
