"""The season demo's insurance products, priced on the sandbox's own climate (a burn analysis).

An index product is only as good as its triggers: set them inside the region's ordinary weather and
it pays every season (the original MicroCrop defaults, written for drier places, paid every plot of
the demo's control region in ordinary June dry spells). Real products set each trigger from the
region's weather history so that it is reached only in a bad year. This module does that here:

1. HISTORY_YEARS seasons of the sandbox's normal climate (its weather generator and its stations,
   without the scenario's events) are put through the pipeline's own plot weather and index code
   (`compute_weather_indices`) for the season's plots, their sowing dates moved to each year;
2. per region and layer, the season-worst index of every plot-season (the lowest for a deficit
   layer such as the worst 14-day rain, the highest for an excess layer such as Rx1day);
3. the trigger is the level a plot-season reaches once in RETURN_PERIOD_YEARS, or the original
   default where that is rarer still; the exit keeps the default layer's shape (deficit layers:
   the same exit/trigger ratio, excess layers: the same width).

`python -m microcrop_assets.season.calibration` writes `season_products.json` (per region: the
layers, the quantiles they came from and how often the default and the priced triggers are reached
in the normal climate); `python -m microcrop_assets.season.plot_generator` then writes the terms into the
season plots. Both outputs are pure functions of the seeds and are committed.
"""

import dataclasses
import datetime as dt
import json
import math
import sys
import tempfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from microcrop_assets.sandbox.config import DEFAULT_SEED, SandboxConfig
from microcrop_assets.sandbox.scenario import Scenario
from microcrop_assets.sandbox.world import World
from microcrop_assets.science.geo import assign_stations
from microcrop_assets.science.plot_indices import LOOKBACK_DAYS, compute_weather_indices
from microcrop_assets.science.policy import DEFAULT_TERMS, resolve_terms
from microcrop_assets.season.files import PRODUCTS_FILE, SEASON_PLOTS_FILE

HISTORY_YEARS = 30
RETURN_PERIOD_YEARS = 10
SEASON_START = (4, 1)  # month, day: the long-rains season window of the demo's scenario
SEASON_DAYS = 120
# the pipeline's defaults for station assignment (weather_stations) and the season's station count
RADIUS_KM, MAX_STATIONS_PER_PLOT, STATION_COUNT = 50.0, 8, 24


def is_deficit(layer: dict) -> bool:
    """A deficit layer (rain, NDVI) stresses below its trigger; an excess layer above it."""
    return Decimal(layer["trigger"]) > Decimal(layer["exit"])


def priced_layer(default: dict, season_worst: np.ndarray, return_period: int = RETURN_PERIOD_YEARS) -> dict:
    """The layer's trigger at the level its season-worst index reaches once in `return_period`
    plot-seasons (never laxer than the default trigger), and its exit in the default layer's shape."""
    values = season_worst[np.isfinite(season_worst)]
    if len(values) == 0:
        raise ValueError(f"layer on {default['index']}: no season of the history has this index")
    trigger0, exit0 = Decimal(default["trigger"]), Decimal(default["exit"])
    if is_deficit(default):
        trigger = _one_decimal(np.quantile(values, 1 / return_period), "floor")
        if trigger >= trigger0:
            return dict(default)
        exit_ = _one_decimal(float(trigger * exit0 / trigger0), "floor")
    else:
        trigger = _one_decimal(np.quantile(values, 1 - 1 / return_period), "ceiling")
        if trigger <= trigger0:
            return dict(default)
        exit_ = trigger + (exit0 - trigger0)
    if trigger == exit_:
        exit_ = trigger - Decimal("0.1") if is_deficit(default) else trigger + Decimal("0.1")
    return {**default, "trigger": str(trigger), "exit": str(exit_)}


def _one_decimal(value: float, direction: str) -> Decimal:
    """One decimal place, rounded away from the stressed side (the priced trigger stays as rare)."""
    scaled = value * 10
    whole = math.floor(scaled + 1e-9) if direction == "floor" else math.ceil(scaled - 1e-9)
    return (Decimal(whole) / 10).quantize(Decimal("0.1"), ROUND_HALF_UP)


def reach_share(layer: dict, season_worst: np.ndarray) -> float:
    """Share of plot-seasons whose season-worst index goes past the layer's trigger."""
    values = season_worst[np.isfinite(season_worst)]
    trigger = float(layer["trigger"])
    past = values < trigger if is_deficit(layer) else values > trigger
    return round(float(past.mean()), 4) if len(values) else float("nan")


def _season_plots(document: dict) -> pd.DataFrame:
    rows = []
    for feature in document["features"]:
        props = feature["properties"]
        ring = np.array(feature["geometry"]["coordinates"][0][:-1])
        rows.append(
            {
                "plot_id": props["plot_id"],
                "region": props["plot_id"].rsplit("-", 1)[0],
                "crop": props["crop"],
                "sowing_date": dt.date.fromisoformat(props["sowing_date"]),
                "season_end": dt.date.fromisoformat(props["season_end"]),
                "centroid_lon": float(ring[:, 0].mean()),
                "centroid_lat": float(ring[:, 1].mean()),
            }
        )
    return pd.DataFrame(rows)


def _station_days(world: World, first: dt.date, last: dt.date) -> pd.DataFrame:
    weather = world.station_weather(first, last)
    days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
    n_st, n_days = weather["rain"].shape
    return pd.DataFrame(
        {
            "station_id": np.repeat([s.id for s in world.stations], n_days),
            "day": days * n_st,
            "rain_mm": weather["rain"].ravel(),
            "tmax_c": weather["tmax"].ravel(),
            "tmin_c": weather["tmin"].ravel(),
            "tmean_c": ((weather["tmax"] + weather["tmin"]) / 2).ravel(),
            "coverage": 1.0,
            "qod": weather["qod_base"].ravel(),
        }
    )


def season_worst_indices(
    document: dict, years: int = HISTORY_YEARS, last_year: int = 2024, seed: int = DEFAULT_SEED
) -> pd.DataFrame:
    """Per plot and past season (last_year - years + 1 .. last_year): the season-worst value of every
    default layer's index over the season window, from the normal climate through the pipeline's code."""
    plots = _season_plots(document)
    first_year = last_year - years + 1
    with tempfile.TemporaryDirectory() as tmp:
        plots_file = Path(tmp) / "plots.geojson"
        plots_file.write_text(json.dumps(document), encoding="utf-8")
        world = World(
            SandboxConfig(
                seed=seed,
                scenario=Scenario(),
                world_start=dt.date(first_year - 1, 1, 1),
                plots_file=plots_file,
                station_count=STATION_COUNT,
            )
        )
    stations = pd.DataFrame([{"station_id": s.id, "lat": s.lat, "lon": s.lon} for s in world.stations])
    assignments = assign_stations(plots, stations, RADIUS_KM, MAX_STATIONS_PER_PLOT)
    layers = DEFAULT_TERMS["layers"]
    frames = []
    for year in range(first_year, last_year + 1):
        first = dt.date(year, *SEASON_START)
        days = [first + dt.timedelta(days=k) for k in range(SEASON_DAYS)]
        plots_year = plots.assign(
            sowing_date=[d.replace(year=year) for d in plots["sowing_date"]],
            season_end=[d.replace(year=year) for d in plots["season_end"]],
            policy_terms=[resolve_terms(crop, None) for crop in plots["crop"]],
        )
        station_days = _station_days(world, days[0] - dt.timedelta(days=LOOKBACK_DAYS), days[-1])
        rows = compute_weather_indices(plots_year, assignments, station_days, days)
        rows = rows[rows["in_season"]]
        worst = {}
        for name, layer in layers.items():
            grouped = rows.groupby("plot_id")[layer["index"]]
            worst[name] = grouped.min() if is_deficit(layer) else grouped.max()
        frame = pd.DataFrame(worst)
        frame["year"] = year
        frames.append(frame.reset_index())
        print(f"  season {year}: {len(frame)} plots", file=sys.stderr, flush=True)
    history = pd.concat(frames, ignore_index=True)
    return history.merge(plots[["plot_id", "region"]], on="plot_id")


def price_products(history: pd.DataFrame, return_period: int = RETURN_PERIOD_YEARS) -> dict:
    """Per region: the priced layers and, per layer, how often the default and the priced triggers
    are reached by a plot-season of the normal climate."""
    products = {}
    for region, group in history.groupby("region"):
        layers, evidence = {}, {}
        for name, default in DEFAULT_TERMS["layers"].items():
            values = group[name].to_numpy(dtype=float)
            layers[name] = priced_layer(default, values, return_period)
            evidence[name] = {
                "default_reached": reach_share(default, values),
                "priced_reached": reach_share(layers[name], values),
            }
        products[str(region)] = {"layers": layers, "normal_climate": evidence}
    return products


def main() -> None:

    document = json.loads(SEASON_PLOTS_FILE.read_text(encoding="utf-8"))
    print(f"pricing the season products on {HISTORY_YEARS} normal seasons ...", file=sys.stderr)
    history = season_worst_indices(document)
    products = {
        "method": dataclasses.asdict(
            _Method(HISTORY_YEARS, RETURN_PERIOD_YEARS, DEFAULT_SEED, f"{SEASON_START[0]:02d}-{SEASON_START[1]:02d}")
        ),
        "regions": price_products(history),
    }
    PRODUCTS_FILE.write_text(json.dumps(products, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {PRODUCTS_FILE}", file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class _Method:
    history_years: int
    return_period_years: int
    sandbox_seed: int
    season_start: str


if __name__ == "__main__":
    main()
