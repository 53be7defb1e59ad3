"""Plot days: inverse-distance-weighted weather from the stations assigned to each plot.

Pure functions (science.md section 1). Dense and vectorised: each plot's assigned stations form a
row of a (plots x K) matrix, nearest first; each day is a handful of numpy operations over that
matrix (gather the station days, rank the passing stations by a running count, weight, sum), so the
cost is plots x K x days element operations, whatever the number of stations.
"""

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa

WEATHER_VARIABLES = ("rain_mm", "tmax_c", "tmin_c", "tmean_c")

# Distances below this count as this (1 m): a station on the plot takes all the weight, without 1/0.
MIN_DISTANCE_KM = 0.001

PLOT_DAY_COLUMNS = ("plot_id", "day", *WEATHER_VARIABLES, "n_stations", "stations", "weights")


def normalised_weights(used: np.ndarray, slot_weight: np.ndarray) -> np.ndarray:
    """Inverse-distance weights of the used slots (last axis, nearest first) divided by their sum,
    added slot by slot in that order; 0 for unused slots. These are the weights recorded with a plot
    day, and the weights its weather is computed from (so the record recomputes it exactly)."""
    weights = np.where(used, slot_weight, 0.0)
    total = 0.0
    for j in range(weights.shape[-1]):
        total = total + weights[..., j]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(used, weights / np.expand_dims(total, -1), 0.0)


def _check_assignments(assignments: pd.DataFrame) -> None:
    missing = {"plot_id", "station_id", "distance_km"} - set(assignments.columns)
    if missing:
        raise ValueError(f"assignments lack columns {sorted(missing)}")
    distance = assignments["distance_km"].to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(distance) | (distance < 0)
    if bad.any():
        row = assignments.loc[bad].iloc[0]
        raise ValueError(
            f"assignment plot {row['plot_id']!r} station {row['station_id']!r} has distance_km "
            f"{float(row['distance_km'])}; distances must be >= 0"
        )
    repeated = assignments.duplicated(["plot_id", "station_id"])
    if repeated.any():
        row = assignments.loc[repeated].iloc[0]
        raise ValueError(f"station {row['station_id']!r} is assigned twice to plot {row['plot_id']!r}")


def _list_column(offsets: np.ndarray, values: pa.Array) -> pd.Series:
    """A column whose cells are lists (`values[offsets[i]:offsets[i + 1]]`), held by Arrow: a cell reads
    back as a Python list, but millions of them cost no Python objects until someone reads them."""
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    return pd.Series(pd.arrays.ArrowExtensionArray(lists))


def _empty() -> pd.DataFrame:
    no_lists = np.zeros(1, dtype=np.int32)
    return pd.DataFrame(
        {
            "plot_id": pd.Series(dtype=object),
            "day": pd.Series(dtype=object),
            **{name: pd.Series(dtype=float) for name in WEATHER_VARIABLES},
            "n_stations": pd.Series(dtype=np.int64),
            "stations": _list_column(no_lists, pa.array([], pa.string())),
            "weights": _list_column(no_lists, pa.array([], pa.float64())),
        }
    )


@dataclass(frozen=True)
class PlotWeatherGrid:
    """Plot weather as dense (plots x days) grids, plus what is needed to name the stations used."""

    plot_ids: np.ndarray  # sorted
    days: list  # consecutive or not: the days asked for, in order
    values: dict[str, np.ndarray]  # variable -> (plots x days), NaN where missing
    n_stations: np.ndarray  # (plots x days) stations used
    used: np.ndarray  # (days x plots x K) station slot used that day
    slot_station: np.ndarray  # (plots x K) station id per slot, nearest first (None for empty slots)
    slot_weight: np.ndarray  # (plots x K) inverse-distance weight per slot (0 for empty slots)

    @cached_property
    def _slot_station_json(self) -> np.ndarray:
        """Station ids JSON-escaped once (ids come from the vendor)."""
        unique, inverse = np.unique(self.slot_station.astype(str), return_inverse=True)
        escaped = np.array([json.dumps(x)[1:-1] for x in unique], dtype=object)
        return escaped[inverse].reshape(self.slot_station.shape)

    def day_cells(self, day_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Per plot on one day, as JSON text: station ids (nearest first) and the normalised weights
        the plot weather was computed with, written to round-trip exactly (shortest repr), or None
        for a plot without a station that day."""
        used = self.used[day_index]
        weights = normalised_weights(used, self.slot_weight)
        stations_json = np.full(len(used), None, dtype=object)
        weights_json = np.full(len(used), None, dtype=object)
        # rows sharing a pattern of used slots are formatted together (K <= a few: few patterns)
        pattern = used @ (1 << np.arange(used.shape[1]))
        for code in np.unique(pattern[pattern > 0]):
            rows = np.flatnonzero(pattern == code)
            slots = np.flatnonzero(used[rows[0]])
            names = self._slot_station_json[np.ix_(rows, slots)]
            numbers = weights[np.ix_(rows, slots)].tolist()
            stations_json[rows] = ['["' + '","'.join(row) + '"]' for row in names.tolist()]
            weights_json[rows] = ["[" + ",".join(map(repr, row)) + "]" for row in numbers]
        return stations_json, weights_json


def _validated(station_days: pd.DataFrame, max_stations: int, power: float) -> None:
    missing = {"station_id", "day", "coverage", "qod", *WEATHER_VARIABLES} - set(station_days.columns)
    if missing:
        raise ValueError(f"station_days lack columns {sorted(missing)}")
    if not isinstance(max_stations, int) or max_stations < 1:
        raise ValueError(f"max_stations={max_stations!r} must be a whole number >= 1")
    if not power > 0:
        raise ValueError(f"power={power!r} must be > 0")


def plot_weather_grid(
    assignments: pd.DataFrame,
    station_days: pd.DataFrame,
    days,
    *,
    min_coverage: float = 0.8,
    min_qod: float = 0.8,
    max_stations: int = 5,
    power: float = 2.0,
    plot_ids=None,
) -> PlotWeatherGrid:
    """Inverse-distance-weighted plot weather for `days` (see `plot_weather` for the rules).

    `plot_ids` fixes the grid's rows (e.g. every active plot, served or not); by default the plots
    of `assignments`, sorted.
    """
    _check_assignments(assignments)
    min_coverage, min_qod, power = float(min_coverage), float(min_qod), float(power)  # policy terms may be Decimal
    _validated(station_days, max_stations, power)
    days = list(days)
    plots = np.asarray(sorted(set(assignments["plot_id"])) if plot_ids is None else plot_ids, dtype=object)

    coverage = station_days["coverage"].to_numpy(dtype=float, na_value=np.nan)
    qod = station_days["qod"].to_numpy(dtype=float, na_value=np.nan)
    counting = station_days.loc[(coverage >= min_coverage) & (qod >= min_qod)]
    day_index = pd.Index(days).get_indexer(counting["day"])
    counting = counting.loc[day_index >= 0]
    day_index = day_index[day_index >= 0]
    repeated = counting.duplicated(["station_id", "day"])
    if repeated.any():
        row = counting.loc[repeated].iloc[0]
        raise ValueError(f"station_days hold station {row['station_id']!r} day {row['day']!r} twice")

    # Station-day tables (stations + 1 sentinel row for "no station", days); the sentinel never passes.
    station_code, stations = pd.factorize(counting["station_id"])
    n_stations = len(stations)
    passing = np.zeros((n_stations + 1, len(days)), dtype=bool)
    passing[station_code, day_index] = True
    tables = {}
    for name in WEATHER_VARIABLES:
        table = np.full((n_stations + 1, len(days)), np.nan)
        table[station_code, day_index] = counting[name].to_numpy(dtype=float, na_value=np.nan)
        tables[name] = table

    # Slots: each plot's assigned stations, nearest first (ties by station id).
    plot_row = pd.Index(plots).get_indexer(assignments["plot_id"])
    known = assignments[plot_row >= 0]
    plot_row = plot_row[plot_row >= 0]
    distance = known["distance_km"].to_numpy(dtype=float)
    station_rank = pd.factorize(known["station_id"], sort=True)[0]
    order = np.lexsort((station_rank, distance, plot_row))
    plot_row, distance = plot_row[order], distance[order]
    ids = known["station_id"].to_numpy(dtype=object)[order]
    first_of_plot = np.r_[0, np.flatnonzero(np.diff(plot_row)) + 1]
    slot = np.arange(len(plot_row)) - np.repeat(first_of_plot, np.diff(np.r_[first_of_plot, len(plot_row)]))
    k = int(slot.max()) + 1 if len(slot) else 1
    slot_table = np.full((len(plots), k), n_stations)
    found = pd.Index(stations).get_indexer(ids)
    slot_table[plot_row, slot] = np.where(found >= 0, found, n_stations)
    slot_station = np.full((len(plots), k), None, dtype=object)
    slot_station[plot_row, slot] = ids
    slot_weight = np.zeros((len(plots), k))
    slot_weight[plot_row, slot] = 1.0 / np.maximum(distance, MIN_DISTANCE_KM) ** power

    # Day-major working copies, slot columns contiguous: each step below is a plain vector operation
    # over the plots (reductions over the short slot axis are written as K additions).
    passing_by_day = np.ascontiguousarray(passing.T)
    tables_by_day = {name: np.ascontiguousarray(table.T) for name, table in tables.items()}
    slots = [np.ascontiguousarray(slot_table[:, j]) for j in range(k)]
    values_by_day = {name: np.empty((len(days), len(plots))) for name in WEATHER_VARIABLES}
    n_used = np.zeros((len(days), len(plots)), dtype=np.int64)
    used = np.zeros((len(days), len(plots), k), dtype=bool)
    for d in range(len(days)):
        running = np.zeros(len(plots), dtype=np.int64)
        used_slots = []
        for j in range(k):
            passes = passing_by_day[d][slots[j]]
            running += passes
            used_slots.append(passes & (running <= max_stations))
        used[d] = np.stack(used_slots, axis=1)
        n_used[d] = np.minimum(running, max_stations)
        day_weights = normalised_weights(used[d], slot_weight)  # what day_cells records
        for name in WEATHER_VARIABLES:
            column = tables_by_day[name][d]
            slot_values = [column[slots[j]] for j in range(k)]
            # a used station lacking the variable that day is left out of its weights
            weights = [np.where(used_slots[j] & ~np.isnan(slot_values[j]), day_weights[:, j], 0.0) for j in range(k)]
            total = sum(weights)
            with np.errstate(invalid="ignore", divide="ignore"):
                # normalise first: a lone station's weight is exactly 1, its value comes back exactly
                mean = sum((weights[j] / total) * np.nan_to_num(slot_values[j]) for j in range(k))
            values_by_day[name][d] = np.where(total > 0, mean, np.nan)
    values = {name: np.ascontiguousarray(table.T) for name, table in values_by_day.items()}
    n_used = np.ascontiguousarray(n_used.T)
    return PlotWeatherGrid(plots, days, values, n_used, used, slot_station, slot_weight)


def plot_weather(
    assignments: pd.DataFrame,
    station_days: pd.DataFrame,
    *,
    min_coverage: float = 0.8,
    min_qod: float = 0.8,
    max_stations: int = 5,
    power: float = 2.0,
) -> pd.DataFrame:
    """Inverse-distance-weighted plot weather per plot and day.

    `assignments`: `plot_id`, `station_id`, `distance_km` (stations already within the radius).
    `station_days`: `station_id`, `day`, `rain_mm`, `tmax_c`, `tmin_c`, `tmean_c`, `coverage`, `qod`.

    A station day counts only if `coverage >= min_coverage` and `qod >= min_qod` (NaN fails). Per plot
    and day the nearest `max_stations` counting stations are used (ties by station id), with weights
    `1 / max(d, MIN_DISTANCE_KM) ** power` normalised to sum to 1 (`normalised_weights`). A variable
    is `sum((w_i / t) v_i)` over the stations used that have it, nearest first, `t` the sum of their
    `w_i`, so one station lacking it that day (say NaN rain from a broken gauge) leaves it to the
    others; if none has it, it is NaN. The weights recorded are these `w_i`, so the record recomputes
    the value exactly.

    Output, sorted by `plot_id` and `day`: `plot_id`, `day`, `rain_mm`, `tmax_c`, `tmin_c`, `tmean_c`,
    `n_stations`, `stations` (station ids, nearest first) and `weights` (floats, same order), as
    Arrow-backed list columns (a cell reads back as a Python list). A plot day with no counting
    station has no row: it is missing, never zero.
    """
    _check_assignments(assignments)
    _validated(station_days, max_stations, float(power))
    days = sorted(set(station_days["day"]))
    if assignments.empty or not days:
        return _empty()
    grid = plot_weather_grid(
        assignments,
        station_days,
        days,
        min_coverage=min_coverage,
        min_qod=min_qod,
        max_stations=max_stations,
        power=power,
    )
    plot_row, day_col = np.nonzero(grid.n_stations)  # plot-major: sorted by plot, then day
    if len(plot_row) == 0:
        return _empty()
    used = grid.used.transpose(1, 0, 2)  # plots x days x slots
    entries_plot, entries_day, entries_slot = np.nonzero(used)
    weight = normalised_weights(used, grid.slot_weight[:, None, :])[entries_plot, entries_day, entries_slot]
    offsets = np.r_[0, np.cumsum(grid.n_stations[plot_row, day_col])]
    result = {
        "plot_id": grid.plot_ids[plot_row],
        "day": np.asarray(days, dtype=object)[day_col],
        **{name: grid.values[name][plot_row, day_col] for name in WEATHER_VARIABLES},
        "n_stations": grid.n_stations[plot_row, day_col],
        "stations": _list_column(offsets, pa.array(grid.slot_station[entries_plot, entries_slot], pa.string())),
        "weights": _list_column(offsets, pa.array(weight, pa.float64())),
    }
    return pd.DataFrame(result)[list(PLOT_DAY_COLUMNS)]
