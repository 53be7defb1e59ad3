"""Per-plot daily weather indices and stress scores (science.md sections 1-3), for many plots at once.

Inputs are plain frames (plots with their policy terms, plot-station assignments, station days);
output is one row per active plot and assessed day, the rows of table `weather_indices`.
Each plot's index window runs from max(sowing date, day - 89) to the day; the worst 14-day total
runs inside the current growth stage. Plots sharing a window start and policy parameters are
computed together, so the work is a few dozen vectorised calls per day whatever the plot count.
"""

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from microcrop_assets.science import indices as ix
from microcrop_assets.science.layers import combine_stress, layer_fraction
from microcrop_assets.science.plot_weather import PlotWeatherGrid, plot_weather_grid
from microcrop_assets.science.policy import GROWTH_STAGES, PERILS
from microcrop_assets.science.spi import spi_from_parameters

WINDOW_DAYS = 90
# days of station weather an assessed day may need: the index window, or for monthly SPI-3 the three
# whole months before the current one (at most 92 days) plus up to 30 days of the current month
LOOKBACK_DAYS = 123
WORST_WINDOW_DAYS = 14
HOT_SPELL_DAYS = 7  # tmax_max_c looks at the last week: a heat layer is about current heat
# weather_indices.layers keeps each fraction to 6 places (readable JSON); the stresses use the unrounded ones
LAYER_PLACES = 6

INDEX_COLUMNS = (
    "rain_7d_mm", "rain_30d_mm", "rain_window_mm", "cdd", "rx1day_mm", "rx3day_mm", "rx5day_mm", "r10mm", "r20mm",
    "worst_14d_rain_mm", "heat_days", "tmax_max_c", "heat_degree_days", "gdd", "spi_1", "spi_3",
)  # fmt: skip
OUTPUT_COLUMNS = (
    "plot_id", "day", "in_season", "growth_stage", "rain_mm", "tmax_c", "tmin_c", "tmean_c", "n_stations",
    "stations", "weights", "window_start", "window_days", "missing_days", *INDEX_COLUMNS, "layers",
    "drought_stress", "flood_stress", "heat_stress", "weather_stress", "missing_reason",
)  # fmt: skip
_WEATHER = ("rain_mm", "tmax_c", "tmin_c", "tmean_c")


def _join_reasons(*columns: np.ndarray) -> np.ndarray:
    joined = np.full(len(columns[0]), None, dtype=object)
    for i in range(len(joined)):
        parts = [c[i] for c in columns if c[i]]
        joined[i] = "; ".join(dict.fromkeys(parts)) if parts else None
    return joined


_N_DAY_INDICES = {
    "rain_7d_mm": (ix.rain_total, 7),
    "rain_30d_mm": (ix.rain_total, 30),
    "rx3day_mm": (ix.rxnday, 3),
    "rx5day_mm": (ix.rxnday, 5),
}


def _window_indices(rain, tmax, tmean, heat_c: float, gdd_base: float, gate: float) -> dict:
    """Every season-window index for a block of plots sharing one window (plots x window days)."""
    kw = {"max_missing_share": gate}
    hot_window = tmax[:, -min(HOT_SPELL_DAYS, tmax.shape[1]) :]
    width = rain.shape[1]
    result = {
        "rain_window_mm": ix.rain_total(rain, width, **kw),
        "cdd": ix.consecutive_dry_days(rain, 1.0, **kw),
        "rx1day_mm": ix.rx1day(rain, **kw),
        "r10mm": ix.count_days_at_or_above(rain, 10.0, **kw),
        "r20mm": ix.count_days_at_or_above(rain, 20.0, **kw),
        "heat_days": ix.heat_days(tmax, heat_c, **kw),
        "tmax_max_c": ix.tmax_max(hot_window, **kw),
        "heat_degree_days": ix.heat_degree_days(tmax, heat_c, **kw),
        "gdd": ix.growing_degree_days(tmean, gdd_base, **kw),
    }
    short = []
    for name, (function, n) in _N_DAY_INDICES.items():
        if width >= n:
            result[name] = function(rain, n, **kw)
        else:  # too early in the season for an n-day index: missing, and said why
            result[name] = np.full(len(rain), np.nan)
            short.append(f"{name}: season window of {width} days < {n}")
    short_reason = np.full(len(rain), "; ".join(short) or None, dtype=object)
    result["reason"] = _join_reasons(
        ix.completeness_reasons(rain, "rain", max_missing_share=gate),
        ix.completeness_reasons(tmax, "tmax", max_missing_share=gate),
        short_reason,
    )
    return result


def _worst_in_phase(rain: np.ndarray, phase_days: np.ndarray, gate: float) -> tuple[np.ndarray, np.ndarray]:
    """Worst 14-day total over windows ending inside the current stage (plots x WINDOW_DAYS days).

    Early in a stage the windows reach back before it (the first is the trailing 14 days), so the
    index exists from the 14th day of data, not only from the 14th day of each stage.
    """
    last = rain.shape[1] - 1
    start = np.clip(last - np.maximum(phase_days, WORST_WINDOW_DAYS - 1), 0, None).astype(int)
    worst = ix.worst_window_total(rain, WORST_WINDOW_DAYS, start_index=start, max_missing_share=gate)
    reasons = ix.completeness_reasons(
        rain, "worst 14-day rain", max_missing_share=gate, start_index=start, min_days=WORST_WINDOW_DAYS
    )
    return worst, reasons


def weather_stresses(
    indices: pd.DataFrame, terms: Mapping
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Layer fractions (unrounded), peril stresses and weather stress, one value per row of `indices`
    (index columns, NaN = missing), from the policy's `layers` and `peril_weights`.

    Also how a proof's weather part is recomputed (proofs.document), so a proof is checked by this code."""
    fractions = {
        name: layer_fraction(
            indices[layer["index"]].to_numpy(dtype=float), Decimal(layer["trigger"]), Decimal(layer["exit"])
        )
        for name, layer in terms["layers"].items()
    }
    perils = {}
    for peril in PERILS:
        members = [fractions[n] for n, layer in terms["layers"].items() if layer["peril"] == peril]
        if not members:
            continue
        stacked = np.vstack(members)
        worst = np.fmax.reduce(stacked, axis=0)
        # a missing layer could only raise the peril's stress: unknown unless another already reached 1
        perils[peril] = np.where(np.isnan(stacked).any(axis=0) & ~(worst >= 1), np.nan, worst)
    weights = {p: float(Decimal(terms["peril_weights"][p])) for p in perils}
    weather = combine_stress(perils, weights) if perils else np.full(len(indices), np.nan)
    return fractions, perils, np.asarray(weather, dtype=float)


def stored_layers(fractions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The layer fractions as `weather_indices.layers` keeps them: by name, rounded to LAYER_PLACES."""
    return {name: np.round(fractions[name], LAYER_PLACES) for name in sorted(fractions)}


def _stress(frame: pd.DataFrame, terms: dict) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """Peril stresses, weather stress and the layers' JSON for plots sharing one set of policy terms."""
    fractions, perils, weather = weather_stresses(frame, terms)
    # one JSON object per plot, built by pandas' C writer (NaN becomes null)
    layers = pd.DataFrame(stored_layers(fractions)).to_json(orient="records", lines=True).splitlines()
    return perils, weather, layers


def _month_totals(rain: np.ndarray, first: dt.date, months: list[pd.Period], gate: float) -> list[float]:
    totals = []
    for month in months:
        a, b = (month.start_time.date() - first).days, (month.end_time.date() - first).days + 1
        if a < 0 or b > len(rain):
            totals.append(np.nan)
            continue
        values = rain[a:b]
        missing = int(np.isnan(values).sum())
        totals.append(float(np.nansum(values)) if missing <= np.floor(gate * len(values) + 1e-9) else np.nan)
    return totals


def _spi_columns(frame, rain, first, day, terms, in_season) -> list[str | None]:
    """Monthly SPI-1 and SPI-3 of the last complete calendar month, where the policy gives gamma parameters.

    A 30-year calibration record does not exist for these young station networks, so SPI comes from
    per-month gamma parameters stated in the policy, or is missing with the reason.
    """
    last = pd.Period(day + dt.timedelta(days=1), "M") - 1
    reasons = []
    for i, terms_i in enumerate(terms):
        parameters = terms_i["spi"]["gamma_parameters"]
        if not in_season[i]:
            reasons.append(None)
            continue
        if not parameters:
            reasons.append(
                "spi: no calibration record of "
                f"{terms_i['spi']['min_calibration_years']} years and no policy gamma parameters"
            )
            continue
        months = [last - 2, last - 1, last]
        totals = pd.Series(
            _month_totals(rain[i], first, months, float(terms_i["max_missing_share"])),
            index=pd.PeriodIndex(months, freq="M"),
        )
        for scale in (1, 3):
            frame.loc[i, f"spi_{scale}"] = float(spi_from_parameters(totals, scale, parameters).iloc[-1])
        missing = [f"spi_{k}" for k in (1, 3) if np.isnan(frame.loc[i, f"spi_{k}"])]
        reasons.append(f"{', '.join(missing)}: rain of months to {last} incomplete in the window" if missing else None)
    return reasons


@dataclass(frozen=True)
class _InsuredPlots:
    """The plots of one call and what every assessed day reads of them: their policy terms, crop
    calendars and seasons, and their weather grid, whose column 0 is the day `first`."""

    plot_ids: pd.Series
    terms: list[dict]  # parsed policy terms per plot (identical terms: one dict)
    params: pd.DataFrame  # per plot: terms text ("key"), heat threshold, GDD base, missing-share gate
    calendars: np.ndarray  # (plots x stages) days from sowing to each growth stage
    sowing: np.ndarray
    season_end: np.ndarray
    since_sowing_first: np.ndarray  # days since sowing at the grid's first day
    first: dt.date
    grid: PlotWeatherGrid


def _parsed_terms(policy_terms: pd.Series) -> tuple[list[str], list[dict]]:
    """Each plot's terms as canonical text and parsed. Terms arrive as JSON text (straight from the
    database) or dicts; identical terms are parsed once."""
    texts = [t if isinstance(t, str) else json.dumps(t, sort_keys=True) for t in policy_terms]
    parsed = {text: json.loads(text) for text in set(texts)}
    return texts, [parsed[text] for text in texts]


def _first_weather_day(days: Sequence[dt.date], terms: Sequence[Mapping]) -> dt.date:
    """The first day of station weather the days need: the first day's index window, or with SPI the
    three whole months before the first day's month (SPI-3 of the last complete month)."""
    first = days[0] - dt.timedelta(days=WINDOW_DAYS - 1)
    if any(t["spi"]["gamma_parameters"] for t in terms):
        first = min(first, (pd.Period(days[0] + dt.timedelta(days=1), "M") - 3).start_time.date())
    return first


def _window_index_values(
    plots: _InsuredPlots, col: int, width: np.ndarray, phase_start: np.ndarray, in_season: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every index of the day at grid column `col` for the plots in season (NaN elsewhere), their reasons
    and each window's missing days. Plots sharing a window start and policy parameters are one block."""
    n_plots = len(in_season)
    grids, params = plots.grid.values, plots.params
    start = col - width + 1
    values = {c: np.full(n_plots, np.nan) for c in INDEX_COLUMNS}
    reason = np.full(n_plots, None, dtype=object)
    missing_days = np.zeros(n_plots, dtype=int)
    season_rows = pd.DataFrame(
        {"start": start, "key": params["key"], "heat": params["heat"], "gdd": params["gdd"], "gate": params["gate"]}
    )[in_season]
    for (s, _, heat, gdd, gate), group in season_rows.groupby(["start", "key", "heat", "gdd", "gate"]):
        idx = group.index.to_numpy()
        block = slice(int(s), col + 1)
        rain = grids["rain_mm"][idx, block]
        result = _window_indices(rain, grids["tmax_c"][idx, block], grids["tmean_c"][idx, block], heat, gdd, gate)
        for c in INDEX_COLUMNS:
            if c in result:
                values[c][idx] = result[c]
        reason[idx] = result["reason"]
        missing_days[idx] = np.isnan(rain).sum(axis=1)
    full = slice(col - WINDOW_DAYS + 1, col + 1)
    for gate, group in season_rows.groupby("gate"):
        idx = group.index.to_numpy()
        values["worst_14d_rain_mm"][idx], worst_reason = _worst_in_phase(
            grids["rain_mm"][idx, full], phase_start[idx], gate
        )
        reason[idx] = [
            ("; ".join(x for x in pair if x) or None) for pair in zip(reason[idx], worst_reason, strict=True)
        ]
    return values, reason, missing_days


def _stress_columns(frame: pd.DataFrame, plots: _InsuredPlots, in_season: np.ndarray) -> None:
    """Fill the layers and the stress columns of the plots in season, by groups sharing policy terms."""
    frame["layers"] = None
    for c in ("drought_stress", "flood_stress", "heat_stress", "weather_stress"):
        frame[c] = np.nan
    for _, group in plots.params[in_season].groupby("key"):
        idx = group.index.to_numpy()
        perils, weather_stress, layers = _stress(frame.loc[idx], plots.terms[idx[0]])
        for peril, stress in perils.items():
            frame.loc[idx, f"{peril}_stress"] = stress
        frame.loc[idx, "weather_stress"] = weather_stress
        frame.loc[idx, "layers"] = layers


def _day_rows(plots: _InsuredPlots, day: dt.date) -> pd.DataFrame:
    """One assessed day's rows for every plot: season and growth stage, the day's weather and stations,
    the window's indices, SPI, the stresses and why any is missing."""
    n_plots = len(plots.plot_ids)
    grid, grids = plots.grid, plots.grid.values
    col = (day - plots.first).days
    since = plots.since_sowing_first + col
    in_season = (since >= 0) & np.array([day <= e for e in plots.season_end])
    frame = pd.DataFrame({"plot_id": plots.plot_ids, "day": day, "in_season": in_season})
    stage_index = (since[:, None] >= plots.calendars).sum(axis=1) - 1
    frame["growth_stage"] = np.where(in_season, np.array(GROWTH_STAGES)[np.clip(stage_index, 0, 5)], None)
    for name in _WEATHER:
        frame[name] = grids[name][:, col]
    frame["stations"], frame["weights"] = grid.day_cells(col)
    frame["n_stations"] = grid.n_stations[:, col]

    width = np.minimum(since, WINDOW_DAYS - 1) + 1  # window length per plot (days)
    stage_start = plots.calendars[np.arange(n_plots), np.clip(stage_index, 0, 5)]
    phase_start = np.clip(since - stage_start, 0, None)  # days since the stage began
    frame["window_start"] = [
        day - dt.timedelta(days=int(w) - 1) if ok else None for w, ok in zip(width, in_season, strict=True)
    ]
    frame["window_days"] = np.where(in_season, width, 0)
    values, reason, missing_days = _window_index_values(plots, col, width, phase_start, in_season)
    for c in INDEX_COLUMNS:
        frame[c] = values[c]
    frame["missing_days"] = np.where(in_season, missing_days, None)

    spi_reason = _spi_columns(frame, grids["rain_mm"], plots.first, day, plots.terms, in_season)
    _stress_columns(frame, plots, in_season)
    season_reason = [
        f"outside the insured season ({s}..{e})" for s, e in zip(plots.sowing, plots.season_end, strict=True)
    ]
    frame["missing_reason"] = np.where(
        in_season,
        [("; ".join(x for x in (r, q) if x) or None) for r, q in zip(reason, spi_reason, strict=True)],
        season_reason,
    )
    return frame


def compute_weather_indices(
    plots: pd.DataFrame,
    assignments: pd.DataFrame,
    station_days: pd.DataFrame,
    days: Sequence[dt.date],
    *,
    min_coverage: float = 0.8,
    min_qod: float = 0.8,
    max_stations: int = 5,
) -> pd.DataFrame:
    """Rows of `weather_indices` for every plot in `plots` and every day in `days`.

    `plots`: plot_id, sowing_date, season_end, policy_terms (resolved terms, see policy.resolve_terms).
    `station_days` must cover the LOOKBACK_DAYS - 1 days before the first day (missing days stay missing).
    """
    days = sorted(days)
    plots = plots.reset_index(drop=True)
    if len(plots) == 0:
        return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    texts, terms = _parsed_terms(plots["policy_terms"])
    first = _first_weather_day(days, terms)
    n_days = (days[-1] - first).days + 1
    grid = plot_weather_grid(
        assignments,
        station_days,
        [first + dt.timedelta(days=i) for i in range(n_days)],
        min_coverage=min_coverage,
        min_qod=min_qod,
        max_stations=max_stations,
        plot_ids=plots["plot_id"],
    )
    sowing = pd.to_datetime(plots["sowing_date"]).dt.date.to_numpy()
    insured = _InsuredPlots(
        plot_ids=plots["plot_id"],
        terms=terms,
        params=pd.DataFrame(
            {
                "key": texts,
                "heat": [float(t["heat_threshold_c"]) for t in terms],
                "gdd": [float(t["gdd_base_c"]) for t in terms],
                "gate": [float(t["max_missing_share"]) for t in terms],
            }
        ),
        calendars=np.array([[t["crop_calendar"][s] for s in GROWTH_STAGES] for t in terms]),
        sowing=sowing,
        season_end=pd.to_datetime(plots["season_end"]).dt.date.to_numpy(),
        since_sowing_first=np.array([(first - s).days for s in sowing]),
        first=first,
        grid=grid,
    )
    result = pd.concat([_day_rows(insured, day) for day in days], ignore_index=True)
    return result[list(OUTPUT_COLUMNS)]
