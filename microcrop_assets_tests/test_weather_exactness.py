"""Every recorded plot day recomputes exactly from what `weather_indices` records.

A sandbox run stores station days (`weather_daily`) and per plot day the stations used and their
weights (`weather_indices.stations`, `.weights`). Recomputing each plot day's rain and temperatures
from those rows alone, in plain Python, must give the stored value bit for bit (==): the weights
recorded are the weights used, not a rounding of them.
"""

import datetime as dt
import math
from decimal import Decimal

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from microcrop_assets.defs.damage.assets import assessment_inputs
from microcrop_assets.defs.payouts.proving import weather_chains
from microcrop_assets.defs.weather.assets import weather_daily, weather_indices, weather_readings
from microcrop_assets.proofs.document import weather_differences
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox
from microcrop_assets.science.plot_indices import LOOKBACK_DAYS, compute_weather_indices
from microcrop_assets_tests.fixtures.damage import add_plot
from microcrop_assets_tests.fixtures.weather import SOWING_DAY, chain_resources, registered

pytestmark = pytest.mark.integration

FIRST, LAST = SOWING_DAY, dt.date(2025, 7, 24)
CLOCK = dt.datetime(2025, 8, 5, 12, tzinfo=dt.UTC)
VARIABLES = ("rain_mm", "tmax_c", "tmin_c", "tmean_c")


def recomputed(stations: list[str], weights: list[float], station_day: dict, variable: str) -> float:
    """The documented rule: sum((w_i / t) v_i) over the recorded stations that have the variable,
    in recorded order (nearest first), t = the sum of their w_i; NaN when none has it."""
    present = [(w, station_day[s][variable]) for s, w in zip(stations, weights, strict=True)]
    present = [(w, v) for w, v in present if v is not None and not math.isnan(v)]
    if not present:
        return math.nan
    total = sum(w for w, _ in present)
    return sum((w / total) * v for w, v in present)


@pytest.fixture
def recorded_run(empty_weather, late_sown_plots, tmp_path):
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(chain_resources(sandbox, empty_weather, tmp_path), late_sown_plots)
        window = {
            "dagster/asset_partition_range_start": FIRST.isoformat(),
            "dagster/asset_partition_range_end": LAST.isoformat(),
        }
        assert dg.materialize([weather_readings, weather_daily], resources=resources, tags=window).success
        assert dg.materialize([weather_indices], resources=resources, tags=window).success
    return empty_weather


def test_plot_weather_recomputes_exactly_from_the_record(recorded_run):
    db = recorded_run
    daily = db.read_frame("SELECT station_id, day, rain_mm, tmax_c, tmin_c, tmean_c FROM weather_daily")
    by_station_day = {(r.station_id, r.day): r._asdict() for r in daily.itertuples(index=False)}
    rows = db.read_frame(
        "SELECT plot_id, day, stations, weights, rain_mm, tmax_c, tmin_c, tmean_c FROM weather_indices"
        " WHERE stations IS NOT NULL ORDER BY plot_id, day"
    )
    assert len(rows) == 12 * ((LAST - FIRST).days + 1)  # every plot day has stations in this run
    several = 0
    for row in rows.itertuples(index=False):
        day = row.day if isinstance(row.day, dt.date) else row.day.date()
        station_day = {s: by_station_day[(s, day)] for s in row.stations}
        several += len(row.stations) > 1
        for variable in VARIABLES:
            stored = getattr(row, variable)
            expected = recomputed(row.stations, row.weights, station_day, variable)
            assert (math.isnan(stored) and math.isnan(expected)) or stored == expected, (
                f"{row.plot_id} {day} {variable}: stored {stored!r}, recomputed {expected!r} from {row.weights}"
            )
    assert several > len(rows) / 2  # most plot days mix stations: the weights matter


# -- the weather part of a proof recomputes from its recorded indices -------------------------------------

RUN_DAYS = [dt.date(2025, 6, 11) + dt.timedelta(days=i) for i in range(10)]
GAMMA = {
    "min_calibration_years": 30,
    "gamma_parameters": {str(m): {"alpha": 2, "beta": 40, "q": 0} for m in range(1, 13)},
}
POLICIES = [
    None,  # the defaults
    {  # drought only, weighted 1.7: the cap from a drought stress of 0.59
        "layers": {
            "rain": {"peril": "drought", "index": "worst_14d_rain_mm", "trigger": "61.3", "exit": "7.9"},
            "spell": {"peril": "drought", "index": "cdd", "trigger": "3", "exit": "11"},
            "month": {"peril": "drought", "index": "rain_30d_mm", "trigger": "140", "exit": "20"},
        },
        "peril_weights": {"drought": "1.7"},
    },
    {  # every peril; the drought alone can reach the cap
        "layers": {
            "rain": {"peril": "drought", "index": "worst_14d_rain_mm", "trigger": "45", "exit": "3"},
            "storm": {"peril": "flood", "index": "rx1day_mm", "trigger": "40", "exit": "95"},
            "wet": {"peril": "flood", "index": "rx5day_mm", "trigger": "60", "exit": "170"},
            "hot": {"peril": "heat", "index": "tmax_max_c", "trigger": "33.3", "exit": "39.1"},
            "degrees": {"peril": "heat", "index": "heat_days", "trigger": "1", "exit": "9"},
        },
        "peril_weights": {"drought": "1.5", "flood": "0.45", "heat": "0.35"},
    },
    {  # SPI from the policy's gamma parameters, a zero-weight peril
        "layers": {
            "spi": {"peril": "drought", "index": "spi_1", "trigger": "-0.5", "exit": "-2.1"},
            "flood": {"peril": "flood", "index": "rx3day_mm", "trigger": "50", "exit": "150"},
        },
        "peril_weights": {"drought": "0.9", "flood": "0"},
        "spi": GAMMA,
    },
]


def station_days(rng: np.random.Generator, stations: list[str]) -> pd.DataFrame:
    """Random station days over every window the run needs: dry spells, storms, heat, and gaps (rain
    and temperature, or temperature alone) that fail the completeness gate for some plots."""
    first = RUN_DAYS[0] - dt.timedelta(days=LOOKBACK_DAYS - 1)
    rows = []
    for station in stations:
        wet = rng.uniform(0.1, 0.6)
        for i in range((RUN_DAYS[-1] - first).days + 1):
            rain = rng.gamma(0.8, 12) if rng.random() < wet else 0.0
            if rng.random() < 0.02:
                rain = rng.uniform(60, 260)  # a storm
            tmax = rng.normal(31, 4)
            no_rain = rng.random() < (0.3 if station.endswith("7") else 0.03)
            no_tmax = no_rain or rng.random() < (0.3 if station.endswith(("1", "3", "5")) else 0.0)
            rows.append(
                {
                    "station_id": station,
                    "day": first + dt.timedelta(days=i),
                    "rain_mm": math.nan if no_rain else rain,
                    "tmax_c": math.nan if no_tmax else tmax,
                    "tmin_c": math.nan if no_tmax else tmax - 12,
                    "tmean_c": math.nan if no_tmax else tmax - 6,
                    "coverage": 1.0,
                    "qod": 1.0,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def varied_run(damage_db) -> pd.DataFrame:
    """120 plots on 4 policies, sown 3 to 120 days before the run, served by 1 to 3 of 16 random stations:
    their `weather_indices` for 10 days, computed and written as the asset does."""
    rng = np.random.default_rng(20250611)
    stations = [f"st-{i:02d}" for i in range(16)]
    assignments = []
    for i in range(120):
        sown = RUN_DAYS[0] - dt.timedelta(days=int(rng.integers(3, 120)))
        add_plot(damage_db, f"P{i:03d}", sowing=sown, terms=POLICIES[i % len(POLICIES)])
        for station in rng.choice(stations, size=int(rng.integers(1, 4)), replace=False):
            assignments.append((f"P{i:03d}", station, float(rng.uniform(1, 25))))
    plots = damage_db.read_frame("SELECT plot_id, crop, sowing_date, season_end, policy_terms FROM plots")
    rows = compute_weather_indices(
        plots,
        pd.DataFrame(assignments, columns=["plot_id", "station_id", "distance_km"]),
        station_days(rng, stations),
        RUN_DAYS,
    )
    damage_db.replace_time_window("weather_indices", "day", RUN_DAYS[0], RUN_DAYS[-1] + dt.timedelta(days=1), rows)
    return rows


def test_the_recorded_weather_part_recomputes_from_its_indices(varied_run, damage_db):
    """What a proof carries of each plot day (`assessment_inputs`, `weather_chains`) recomputes by
    `weather_differences`: layer fractions at their 6 stored places, peril and weather stresses exactly,
    missing values where the pipeline leaves them missing."""
    seen = dict.fromkeys(
        ("rounded layer", "missing layer", "peril at 1 with a missing layer", "capped with a missing peril",
         "missing weather_stress"), 0
    )  # fmt: skip
    for day in RUN_DAYS:
        documents = assessment_inputs(damage_db, day)
        chains = weather_chains(damage_db, day, [document["plot_id"] for document in documents])
        assert len(documents) == 120
        for document in documents:
            chain, weather = chains[document["plot_id"]], document["weather"]
            assert weather_differences(document, chain) == [], (document["plot_id"], day)
            layers = {name: None if v is None else Decimal(v) for name, v in weather["layers"].items()}
            seen["rounded layer"] += any(v is not None and v.as_tuple().exponent == -6 for v in layers.values())
            seen["missing layer"] += None in layers.values()
            perils = {layer["peril"]: weather[f"{layer['peril']}_stress"] for layer in chain["layers"].values()}
            seen["peril at 1 with a missing layer"] += any(
                perils[layer["peril"]] == "1.0" and layers[name] is None for name, layer in chain["layers"].items()
            )
            seen["capped with a missing peril"] += weather["weather_stress"] == "1.0" and None in perils.values()
            seen["missing weather_stress"] += weather["weather_stress"] is None and any(perils.values())
    assert all(count >= 5 for count in seen.values()), seen
