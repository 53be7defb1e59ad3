"""The insured-plots registry: parse and validate a GeoJSON FeatureCollection, then store it.

Validation reports every bad feature at once (an operator fixes the file in one go), and a file
with any bad feature changes nothing. Policies are audit records: plots that disappear from a new
source are marked inactive, never deleted.

A plots file is operator input that may be wrong or hostile, so it is bounded (each limit from the
environment, see `PlotLimits`): its size and its JSON nesting depth are checked before it is
parsed (the parser recurses once per level and holds ~30 times the file's size in objects), and
each plot's vertex count and area are checked with its other fields, a plot over a limit being
reported like any invalid feature (plot id, value, limit).
"""

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, Overflow, localcontext
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from microcrop_assets import settings
from microcrop_assets.science.policy import CROPS, PolicyTermsError, resolve_terms, to_decimal

MICRO = Decimal(1_000_000)
MAX_USDC = Decimal(2**63 - 1).scaleb(-6)  # the plots table's money columns are BIGINT micro-USDC
# the payout receiver's policyId is a String[64]: a longer id could be stored but never registered or
# paid on chain (and far under the 2,704 bytes a btree index row on plots.policy_id holds)
POLICY_ID_BYTES = 64
FIELDS = (
    "plot_id",
    "policy_id",
    "farmer_address",
    "crop",
    "sowing_date",
    "season_end",
    "sum_insured_usdc",
    "max_payout_usdc",
    "policy_terms",
)
REQUIRED = ("plot_id", "policy_id", "farmer_address", "crop", "sowing_date", "season_end", "sum_insured_usdc")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PLOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # brackets inside strings do not nest
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


@dataclass(frozen=True)
class PlotLimits:
    """Bounds on a plots file, each from the environment variable named in its refusal."""

    # 16 MiB: ~11,000 plots like the season file's (1.5 kB each); parsing holds ~30x the file in objects
    file_bytes: int = 16 * 1024 * 1024
    # GeoJSON needs 8 levels (a MultiPolygon's positions), policy terms 7: anything deeper is not a plots file
    json_depth: int = 20
    # a boundary walked with a GPS at one point a metre: ~3,000 points around a 50 ha plot, ~600 around 2 ha
    vertices: int = 10_000
    # smallholder farms are mostly under 2 ha (FAO); 50 ha takes a cooperative's block, and refuses a
    # mistyped or hostile polygon that would be ordered (the order states area_hectares) and imaged at its size
    hectares: int = 50

    @classmethod
    def from_env(cls) -> "PlotLimits":
        return cls(
            file_bytes=settings.env_int("MICROCROP_MAX_PLOTS_FILE_BYTES", cls.file_bytes),
            json_depth=settings.env_int("MICROCROP_MAX_PLOTS_JSON_DEPTH", cls.json_depth),
            vertices=settings.env_int("MICROCROP_MAX_PLOT_VERTICES", cls.vertices),
            hectares=settings.env_int("MICROCROP_MAX_PLOT_HECTARES", cls.hectares),
        )


@dataclass(frozen=True)
class PlotProblem:
    index: int | None  # None: the file as a whole
    plot_id: str | None
    field: str
    value: Any
    reason: str

    def __str__(self) -> str:
        shown = _shown(self.value)
        # a field is named by the file (an unknown property, a layer): quoted unless plain text
        field = self.field if self.field.isprintable() and 0 < len(self.field) <= 80 else _shown(self.field)
        if self.index is None:
            return field + ("" if self.value is None else f"={shown}") + f": {self.reason}"
        who = f"feature {self.index}" + (f" (plot_id {_shown(self.plot_id)})" if self.plot_id else "")
        return f"{who}: {field}={shown}: {self.reason}"


def _shown(value: Any) -> str:
    """`value` in a one-line message: its repr (line breaks escaped), cut at 80 characters."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class PlotsFileError(ValueError):
    """Every problem of a plots file, each naming its feature, field, value and reason; a problem of
    the file as a whole (too large, too deep, not JSON) is one line."""

    def __init__(self, source: str, problems: list[PlotProblem]):
        self.source, self.problems = source, problems
        if len(problems) == 1 and problems[0].index is None:
            super().__init__(f"{source}: {problems[0]}; nothing was changed")
            return
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} invalid plot feature(s), nothing was changed:\n{lines}")


@dataclass
class _Feature:
    index: int
    plot_id: str | None
    problems: list[PlotProblem] = field(default_factory=list)

    def bad(self, field_name: str, value: Any, reason: str) -> None:
        self.problems.append(PlotProblem(self.index, self.plot_id, field_name, value, reason))


def is_checksum_address(address: str) -> bool:
    from eth_utils import is_checksum_address as eip55

    return eip55(address)


def _check_address(feature: _Feature, value: Any) -> str | None:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):  # match() takes a trailing newline
        feature.bad("farmer_address", value, "is not an EVM address (0x and 40 hex digits)")
        return None
    digits = value[2:]
    mixed = digits != digits.lower() and digits != digits.upper()
    if mixed and not is_checksum_address(value):
        feature.bad("farmer_address", value, "mixed-case address fails its EIP-55 checksum")
        return None
    return value.lower()


def _check_date(feature: _Feature, name: str, value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        feature.bad(name, value, "is not a YYYY-MM-DD date")
        return None


def _check_usdc(feature: _Feature, name: str, value: Any) -> int | None:
    try:
        amount = to_decimal(value, name)
    except PolicyTermsError:
        feature.bad(name, value, "is not a number")
        return None
    if amount <= 0:
        feature.bad(name, value, "must be positive")
        return None
    if amount > MAX_USDC:
        feature.bad(name, value, f"is more than {MAX_USDC}, the most the plots table holds")
        return None
    # exact, unlike amount * MICRO in the 28-digit context: at most 19 digits once under MAX_USDC
    micro = amount.quantize(Decimal("0.000001"))
    if micro != amount:
        feature.bad(name, value, "has more than 6 decimal places (USDC has 6)")
        return None
    return int(micro.scaleb(6))


@cache
def _wgs84():
    """The WGS84 ellipsoid for geodesic areas, made on first use: pyproj loads with the first plot
    file, not with the definitions."""
    from pyproj import Geod

    return Geod(ellps="WGS84")


_UNSTORABLE = "PostgreSQL cannot store U+0000, an unpaired surrogate (not UTF-8), NaN or infinity"


def _unstorable(value: Any) -> Any:
    """The first string (or key) or number in a JSON value that PostgreSQL cannot store; None if none."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value
        return value if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    items = [*value, *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else []
    for item in items:
        found = _unstorable(item)
        if found is not None:
            return found
    return None


def _position(value: Any) -> list[float] | None:
    """A GeoJSON position as 2 or 3 finite floats; None when `value` is not one."""
    if not isinstance(value, list | tuple) or len(value) not in (2, 3):
        return None
    numbers = []
    for coordinate in value:
        if isinstance(coordinate, bool) or not isinstance(coordinate, int | float | Decimal):
            return None
        try:
            number = float(coordinate)
        except OverflowError:  # an integer no double holds (1e999 as a JSON number is a Decimal: inf)
            return None
        if not math.isfinite(number):
            return None
        numbers.append(number)
    return numbers


def _check_geometry(feature: _Feature, geometry: Any, limits: PlotLimits) -> dict[str, Any] | None:
    from shapely.geometry import shape  # imported on use, like pyproj (see _wgs84)
    from shapely.validation import explain_validity

    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geometry.get("type") if isinstance(geometry, dict) else geometry
        feature.bad("geometry", kind, "must be a GeoJSON Polygon or MultiPolygon")
        return None
    polygons = geometry.get("coordinates")
    if geometry["type"] == "Polygon":
        polygons = [polygons]
    if not isinstance(polygons, list) or not polygons:
        feature.bad("geometry.coordinates", polygons, "must be a list of linear rings")
        return None
    rings = []
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            feature.bad("geometry.coordinates", polygon, "must be a list of linear rings")
            return None
        for ring in polygon:
            if not isinstance(ring, list) or len(ring) < 4:
                feature.bad("geometry.coordinates", ring, "a linear ring needs at least 4 positions")
                return None
            rings.append(ring)
    vertices = sum(len(ring) for ring in rings)
    if vertices > limits.vertices:  # counted before any position is looked at
        feature.bad("vertices", vertices, f"more than MICROCROP_MAX_PLOT_VERTICES={limits.vertices}")
        return None
    dimensions = None  # shapely reads a polygon whose positions all have 2, or all 3, coordinates
    for ring in rings:
        for position in ring:
            numbers = _position(position)
            if numbers is None:
                reason = "a position is [longitude, latitude] or [longitude, latitude, height], finite numbers"
                feature.bad("geometry.coordinates", position, reason)
                return None
            lon, lat = numbers[:2]
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                feature.bad("geometry.coordinates", position, "longitude/latitude out of range")
                return None
            if dimensions not in (None, len(numbers)):
                feature.bad("geometry.coordinates", position, f"the first position has {dimensions} coordinates")
                return None
            dimensions = len(numbers)
        if list(ring[0])[:2] != list(ring[-1])[:2]:
            feature.bad("geometry.coordinates", [ring[0], ring[-1]], "ring is not closed (first != last)")
            return None
    plain = json.loads(json.dumps(geometry, default=float))
    unstorable = _unstorable(plain)  # in a member beside the coordinates (bbox, a foreign member)
    if unstorable is not None:
        feature.bad("geometry", unstorable, _UNSTORABLE)
        return None
    polygon_shape = shape(plain)
    if not polygon_shape.is_valid:
        feature.bad("geometry", geometry["type"], f"invalid polygon: {explain_validity(polygon_shape)}")
        return None
    area_m2 = abs(_wgs84().geometry_area_perimeter(polygon_shape)[0])
    area_ha = (Decimal(area_m2) / Decimal(10_000)).quantize(Decimal("0.0001"))
    if area_ha <= 0:  # a plot of 0 ha would be ordered as such, and refused by the imagery vendor
        feature.bad("geometry", geometry["type"], "polygon has zero area at the 0.0001 ha (1 m2) stored")
        return None
    if area_m2 > limits.hectares * 10_000:
        feature.bad("area_ha", round(area_m2 / 10_000, 1), f"more than MICROCROP_MAX_PLOT_HECTARES={limits.hectares}")
        return None
    centroid = polygon_shape.centroid
    return {
        "geometry": plain,
        "centroid_lat": round(centroid.y, 7),
        "centroid_lon": round(centroid.x, 7),
        "area_ha": area_ha,
    }


def _parse_feature(index: int, raw: Any, limits: PlotLimits) -> tuple[dict[str, Any] | None, list[PlotProblem]]:
    properties = raw.get("properties") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("type") != "Feature" or not isinstance(properties, dict):
        return None, [
            PlotProblem(
                index,
                None,
                "feature",
                raw if not isinstance(raw, dict) else raw.get("type"),
                "is not a GeoJSON Feature with properties",
            )
        ]
    plot_id = properties.get("plot_id")
    feature = _Feature(index, plot_id if isinstance(plot_id, str) else None)
    for name in sorted(set(properties) - set(FIELDS)):
        feature.bad(name, properties[name], "unknown field")
    for name in REQUIRED:
        if properties.get(name) in (None, ""):
            feature.bad(name, properties.get(name), "is required")
    if feature.problems:
        return None, feature.problems

    if not isinstance(plot_id, str) or not _PLOT_ID.fullmatch(plot_id):  # match() takes a trailing newline
        feature.bad("plot_id", plot_id, "must be 1-128 letters, digits, '.', '_', ':' or '-'")
    policy_id = properties["policy_id"]
    if not isinstance(policy_id, str) or not policy_id.strip():
        feature.bad("policy_id", policy_id, "must be a non-empty string")
    elif not policy_id.isprintable():  # U+0000 and unpaired surrogates (not UTF-8) cannot even be stored
        feature.bad("policy_id", policy_id, "must be printable text (no control, format or surrogate characters)")
    elif len(policy_id.strip().encode()) > POLICY_ID_BYTES:
        feature.bad("policy_id", policy_id, f"is longer than {POLICY_ID_BYTES} bytes")
    address = _check_address(feature, properties["farmer_address"])
    crop = properties["crop"]
    if crop not in CROPS:
        feature.bad("crop", crop, f"unknown crop (known: {', '.join(CROPS)})")
    sowing = _check_date(feature, "sowing_date", properties["sowing_date"])
    season_end = _check_date(feature, "season_end", properties["season_end"])
    if sowing and season_end and sowing >= season_end:
        feature.bad("sowing_date", properties["sowing_date"], f"is not before season_end {season_end}")
    sum_insured = _check_usdc(feature, "sum_insured_usdc", properties["sum_insured_usdc"])
    max_payout = sum_insured
    if properties.get("max_payout_usdc") not in (None, ""):
        max_payout = _check_usdc(feature, "max_payout_usdc", properties["max_payout_usdc"])
        if max_payout and sum_insured and max_payout > sum_insured:
            feature.bad(
                "max_payout_usdc",
                properties["max_payout_usdc"],
                f"exceeds sum_insured_usdc {_shown(properties['sum_insured_usdc'])}",
            )
    terms = None
    if crop in CROPS:
        try:
            with localcontext() as context:
                # terms past the decimal exponent range (1e999999999) add up to Infinity, refused as a sum
                context.traps[Overflow] = False
                terms = resolve_terms(crop, properties.get("policy_terms"))
        except PolicyTermsError as error:
            feature.bad(f"policy_terms.{error.field}", error.value, error.reason)
        unstorable = _unstorable(terms)  # in a layer's name or a term taken as given (spi)
        if unstorable is not None:
            feature.bad("policy_terms", unstorable, _UNSTORABLE)
    shape_info = _check_geometry(feature, raw.get("geometry"), limits)
    if feature.problems:
        return None, feature.problems
    record = {
        "plot_id": plot_id,
        "policy_id": policy_id.strip(),
        "farmer_address": address,
        "crop": crop,
        **shape_info,
        "sowing_date": sowing,
        "season_end": season_end,
        "sum_insured_micro_usdc": sum_insured,
        "max_payout_micro_usdc": max_payout,
        "policy_terms": terms,
    }
    record["content_sha256"] = hashlib.sha256(canonical_json(record).encode()).hexdigest()
    return record, []


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in `data`, brackets inside strings aside, found
    without parsing it (linear time; at most ~7 bytes a bracket)."""
    brackets = np.frombuffer(_JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS), np.uint8)
    if not brackets.size:
        return 0
    steps = ((brackets == ord("[")) | (brackets == ord("{"))).view(np.int8) * np.int8(2) - np.int8(1)
    return int(np.cumsum(steps, dtype=np.int32).max())


def refuse_oversized(size: int, source: str, limits: PlotLimits | None = None) -> None:
    """Refuse a plots file over MICROCROP_MAX_PLOTS_FILE_BYTES (callers check the stored size before reading)."""
    limits = limits or PlotLimits.from_env()
    if size > limits.file_bytes:
        reason = f"more than MICROCROP_MAX_PLOTS_FILE_BYTES={limits.file_bytes}"
        raise PlotsFileError(source, [PlotProblem(None, None, "bytes", size, reason)])


def parse_plots(text: str | bytes, source: str) -> pd.DataFrame:
    """Validate a FeatureCollection; return one row per plot or raise PlotsFileError listing every problem."""
    limits = PlotLimits.from_env()
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # both before parsing: json.loads holds ~30x the file in objects and recurses once per nesting level
    refuse_oversized(len(data), source, limits)
    if isinstance(text, bytes):
        # JSON is UTF-8 (RFC 8259), and the depth is counted in UTF-8 bytes: in UTF-16 a character's
        # bytes can be a quote or a bracket, and json.loads (which reads UTF-16 too) then nests unchecked
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise PlotsFileError(source, [PlotProblem(None, None, "file", None, f"is not UTF-8: {error}")]) from None
    depth = nesting_depth(data)
    if depth > limits.json_depth:
        reason = f"JSON arrays/objects nested deeper than MICROCROP_MAX_PLOTS_JSON_DEPTH={limits.json_depth}"
        raise PlotsFileError(source, [PlotProblem(None, None, "nesting depth", depth, reason)])
    try:
        document = json.loads(text, parse_float=Decimal)
    except ValueError as error:
        raise PlotsFileError(source, [PlotProblem(None, None, "file", None, f"is not valid JSON: {error}")]) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        kind = document.get("type") if isinstance(document, dict) else type(document).__name__
        raise PlotsFileError(source, [PlotProblem(None, None, "type", kind, "must be a GeoJSON FeatureCollection")])
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise PlotsFileError(source, [PlotProblem(None, None, "features", features, "must be a non-empty list")])
    records, problems, first_index = [], [], {}
    for index, raw in enumerate(features):
        record, found = _parse_feature(index, raw, limits)
        problems.extend(found)
        if record is None:
            continue
        if record["plot_id"] in first_index:
            problems.append(
                PlotProblem(
                    index,
                    record["plot_id"],
                    "plot_id",
                    record["plot_id"],
                    f"duplicate of feature {first_index[record['plot_id']]}",
                )
            )
            continue
        first_index[record["plot_id"]] = index
        records.append(record)
    if problems:
        raise PlotsFileError(source, problems)
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class ImportSummary:
    inserted: int
    updated: int
    unchanged: int
    deactivated: int
    active: int


_COLUMNS = (
    "plot_id",
    "policy_id",
    "farmer_address",
    "crop",
    "geometry",
    "centroid_lat",
    "centroid_lon",
    "area_ha",
    "sowing_date",
    "season_end",
    "sum_insured_micro_usdc",
    "max_payout_micro_usdc",
    "policy_terms",
    "content_sha256",
    "source",
)


# A plot-season already assessed keeps its policy id and sowing date: the season cap sums its payouts by
# plot and sowing date, over every policy id, and a changed policy id would start a fresh count on chain.
_SEASON_CHANGES_SQL = """
SELECT i.plot_id, p.policy_id AS stored_policy_id, i.policy_id, p.sowing_date AS stored_sowing_date, i.sowing_date,
       p.season_end AS stored_season_end
FROM {staging} i JOIN plots p USING (plot_id)
WHERE (i.policy_id <> p.policy_id OR i.sowing_date <> p.sowing_date)
  AND i.sowing_date <= p.season_end AND i.season_end >= p.sowing_date
  AND EXISTS (SELECT 1 FROM damage_assessments d WHERE d.plot_id = p.plot_id AND d.season_start = p.sowing_date)
ORDER BY i.plot_id
"""


def _refuse_reassessed_season_changes(conn, staging: str, frame: pd.DataFrame, source: str) -> None:
    """Refuse the import when it changes the policy id or sowing date of a season that has assessments
    (a new policy belongs to a new season: one sown after the stored season ends)."""
    index = {plot_id: i for i, plot_id in enumerate(frame["plot_id"])}
    problems = []
    for row in conn.execute(sa.text(_SEASON_CHANGES_SQL.format(staging=staging))):
        season = f"season {row.stored_sowing_date}..{row.stored_season_end} already has assessments"
        if row.policy_id != row.stored_policy_id:
            reason = f"changes policy_id {row.stored_policy_id!r} while its {season}; a new policy needs a new season"
            problems.append(PlotProblem(index[row.plot_id], row.plot_id, "policy_id", row.policy_id, reason))
        if row.sowing_date != row.stored_sowing_date:
            reason = f"changes sowing_date {row.stored_sowing_date} while its {season}"
            problems.append(
                PlotProblem(index[row.plot_id], row.plot_id, "sowing_date", row.sowing_date.isoformat(), reason)
            )
    if problems:
        raise PlotsFileError(source, problems)


def store_plots(db, plots: pd.DataFrame, source: str) -> ImportSummary:
    """Upsert validated plots in one transaction; plots absent from `plots` become inactive."""
    frame = plots.assign(
        source=source,
        geometry=plots["geometry"].map(canonical_json),
        policy_terms=plots["policy_terms"].map(canonical_json),
    )
    with db.begin() as conn:
        # one writer at a time: two imports racing could otherwise deactivate each other's plots
        conn.execute(sa.text("LOCK TABLE plots IN SHARE ROW EXCLUSIVE MODE"))
        staging = db.stage_in(conn, "plots", frame, _COLUMNS)
        _refuse_reassessed_season_changes(conn, staging, frame, source)
        counts = conn.execute(
            sa.text(f"""
            SELECT count(*) FILTER (WHERE p.plot_id IS NULL) AS inserted,
                   count(*) FILTER (WHERE p.plot_id IS NOT NULL
                                    AND (p.content_sha256 <> i.content_sha256 OR NOT p.active)) AS updated
            FROM {staging} i LEFT JOIN plots p USING (plot_id)
        """)
        ).one()
        db.upsert_from(
            conn,
            "plots",
            staging,
            "plot_id",
            _COLUMNS,
            set_also="active = true, deactivated_at = NULL, updated_at = now()",
            where="plots.content_sha256 <> EXCLUDED.content_sha256 OR NOT plots.active",
        )
        deactivated = conn.execute(
            sa.text(f"""
            UPDATE plots SET active = false, deactivated_at = now(), updated_at = now()
            WHERE active AND plot_id NOT IN (SELECT plot_id FROM {staging})
        """)
        ).rowcount
        active = conn.scalar(sa.text("SELECT count(*) FROM plots WHERE active"))
    return ImportSummary(
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=len(frame) - counts.inserted - counts.updated,
        deactivated=deactivated,
        active=active,
    )


def active_plots(db) -> pd.DataFrame:
    """The active plots with their terms, one row per plot (what every downstream asset reads)."""
    frame = db.read_frame("SELECT * FROM plots WHERE active ORDER BY plot_id")
    return frame
