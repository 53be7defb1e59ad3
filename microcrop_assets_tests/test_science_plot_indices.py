"""Per-plot daily weather indices and stress scores from hand-made station days (science.md sections 1-3)."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from microcrop_assets.science.plot_indices import INDEX_COLUMNS, OUTPUT_COLUMNS, WINDOW_DAYS, compute_weather_indices
from microcrop_assets.science.policy import CROP_CALENDARS, DEFAULT_TERMS, resolve_terms

from .test_science_plot_weather import station_day

pytestmark = pytest.mark.unit

SOWN = dt.date(2025, 3, 15)
SEASON_END = dt.date(2025, 7, 31)
DAY = dt.date(2025, 5, 20)  # day 66 after sowing: maize flowering (60..79); window = the 67 days since sowing
STRESSES = ("drought_stress", "flood_stress", "heat_stress", "weather_stress")
NO_SPI = "spi: no calibration record of 30 years and no policy gamma parameters"
GAMMA_2_30 = {
    "min_calibration_years": 30,
    "gamma_parameters": {m: {"alpha": 2, "beta": 30, "q": 0} for m in range(1, 13)},
}


def days_before(last: dt.date, n: int) -> list[dt.date]:
    return [last - dt.timedelta(days=n - 1 - i) for i in range(n)]


def weather(station, last=DAY, *, rain=5.0, tmax=30.0, n=WINDOW_DAYS, changes=None) -> pd.DataFrame:
    """`n` station days ending `last`: constant rain and Tmax (Tmin 12 C, Tmean 6 C below), every gate
    passed; `changes` maps a day to the columns that differ that day."""
    rows = []
    for day in days_before(last, n):
        row = station_day(station, day, rain, tmax=tmax)
        row.update((changes or {}).get(day, {}))
        rows.append(row)
    return pd.DataFrame(rows)


def plots(*rows) -> pd.DataFrame:
    """Rows of (plot_id, policy_terms) or (plot_id, policy_terms, sowing_date, season_end)."""
    full = [(r + (SOWN, SEASON_END))[:4] for r in rows]
    return pd.DataFrame(full, columns=["plot_id", "policy_terms", "sowing_date", "season_end"])


def assign(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["plot_id", "station_id", "distance_km"])


def maize(**overrides) -> dict:
    return resolve_terms("maize", overrides)


def rows_by_plot(result: pd.DataFrame, day=DAY) -> dict[str, pd.Series]:
    return {row["plot_id"]: row for _, row in result[result["day"] == day].iterrows()}


def only_row(station_days: pd.DataFrame, terms=None, **kwargs) -> pd.Series:
    """The DAY row of one maize plot served by station `st-a` at 3 km."""
    result = compute_weather_indices(
        plots(("plot-1", terms or maize())), assign(("plot-1", "st-a", 3.0)), station_days, [DAY], **kwargs
    )
    assert len(result) == 1 and list(result.columns) == list(OUTPUT_COLUMNS)
    return result.iloc[0]


def test_days_outside_the_season_carry_weather_but_no_indices():
    before, after = SOWN - dt.timedelta(days=1), SEASON_END + dt.timedelta(days=1)
    n_days = (after - before).days + WINDOW_DAYS
    result = compute_weather_indices(
        plots(("plot-1", maize())),
        assign(("plot-1", "st-a", 3.0)),
        weather("st-a", after, n=n_days),
        [after, SEASON_END, SOWN, before],
    )
    assert result["day"].tolist() == [before, SOWN, SEASON_END, after]  # days come back sorted
    by_day = result.set_index("day")
    assert by_day["in_season"].tolist() == [False, True, True, False]
    for day in (before, after):
        row = by_day.loc[day]
        assert row["rain_mm"] == 5.0 and row["n_stations"] == 1  # the plot's weather is still reported
        assert row["growth_stage"] is None and row["window_start"] is None and row["layers"] is None
        assert row["window_days"] == 0 and row["missing_days"] is None
        assert row[list(INDEX_COLUMNS)].isna().all()
        assert row[list(STRESSES)].isna().all()
        assert row["missing_reason"] == "outside the insured season (2025-03-15..2025-07-31)"
    # the first and last day of the season are in it
    assert by_day.loc[SOWN, "growth_stage"] == "germination" and by_day.loc[SOWN, "window_days"] == 1
    assert by_day.loc[SEASON_END, "growth_stage"] == "senescence"
    assert by_day.loc[SEASON_END, "weather_stress"] == 0.0


def test_growth_stage_and_window_follow_the_policy_crop_calendar():
    assert CROP_CALENDARS["maize"] == {
        "germination": 0,
        "vegetative": 10,
        "flowering": 60,
        "fruiting": 80,
        "maturity": 110,
        "senescence": 135,
    }
    assert (CROP_CALENDARS["sorghum"]["fruiting"], CROP_CALENDARS["sorghum"]["senescence"]) == (75, 120)
    short = {"germination": 0, "vegetative": 5, "flowering": 20, "fruiting": 30, "maturity": 40, "senescence": 50}
    table = plots(
        ("maize", maize()), ("sorghum", resolve_terms("sorghum", None)), ("short", maize(crop_calendar=short))
    )
    offsets = (0, 9, 10, 66, 76, 89, 90, 127)
    days = [SOWN + dt.timedelta(days=k) for k in offsets]
    result = compute_weather_indices(
        table,
        assign(*((p, "st-a", 3.0) for p in ("maize", "sorghum", "short"))),
        weather("st-a", days[-1], n=WINDOW_DAYS + 127),
        days,
    )
    stages = result.pivot(index="day", columns="plot_id", values="growth_stage")
    assert stages["maize"].tolist() == [
        "germination", "germination", "vegetative", "flowering", "flowering", "fruiting", "fruiting", "maturity",
    ]  # fmt: skip
    assert stages["sorghum"].tolist() == [
        "germination", "germination", "vegetative", "flowering", "fruiting", "fruiting", "fruiting", "senescence",
    ]  # fmt: skip
    assert stages["short"].tolist() == [
        "germination", "vegetative", "vegetative", "senescence", "senescence", "senescence", "senescence",
        "senescence",
    ]  # fmt: skip
    # window_start = max(sowing, day - 89): the season's days only, at most 90
    maize_rows = result[result["plot_id"] == "maize"].set_index("day")
    for k, day in zip(offsets, days, strict=True):
        assert maize_rows.loc[day, "window_start"] == max(SOWN, day - dt.timedelta(days=89))
        assert maize_rows.loc[day, "window_days"] == min(k + 1, 90)
        assert maize_rows.loc[day, "gdd"] == 14.0 * min(k + 1, 90)  # Tmean 24 C, base 10 C, over the window
    assert maize_rows.loc[days[-1], "window_start"] == dt.date(2025, 4, 22)


def test_no_rain_is_full_drought_and_steady_rain_none():
    station_days = pd.concat([weather("st-dry", rain=0.0), weather("st-wet", rain=5.0)])
    result = compute_weather_indices(
        plots(("plot-dry", maize()), ("plot-wet", maize())),
        assign(("plot-dry", "st-dry", 3.0), ("plot-wet", "st-wet", 3.0)),
        station_days,
        [DAY],
    )
    dry, wet = rows_by_plot(result)["plot-dry"], rows_by_plot(result)["plot-wet"]
    assert (dry["window_start"], dry["window_days"], dry["growth_stage"]) == (SOWN, 67, "flowering")
    assert dry["cdd"] == 67 and dry["worst_14d_rain_mm"] == 0 and dry["rain_window_mm"] == 0
    assert json.loads(dry["layers"]) == {
        "drought_rain": 1.0,  # (30 - 0) / (30 - 5) clipped
        "drought_dry_spell": 1.0,  # 67 dry days beyond the exit of 14
        "flood_daily": 0.0,
        "flood_3day": 0.0,
        "heat_tmax": 0.0,
        "heat_degree_days": 0.0,
    }
    assert set(json.loads(dry["layers"])) == set(DEFAULT_TERMS["layers"])
    assert (dry["drought_stress"], dry["flood_stress"], dry["heat_stress"], dry["weather_stress"]) == (1, 0, 0, 1)

    assert wet["cdd"] == 0 and wet["worst_14d_rain_mm"] == 70.0
    assert (wet["rain_7d_mm"], wet["rain_30d_mm"], wet["rain_window_mm"]) == (35.0, 150.0, 335.0)
    assert (wet["rx1day_mm"], wet["rx3day_mm"], wet["rx5day_mm"], wet["r10mm"], wet["r20mm"]) == (5, 15, 25, 0, 0)
    assert json.loads(wet["layers"])["drought_rain"] == 0.0  # 70 mm > the trigger of 30 mm
    assert wet["drought_stress"] == 0 and wet["weather_stress"] == 0
    assert wet["missing_days"] == 0 and wet["missing_reason"] == NO_SPI


def test_a_200_mm_day_is_a_third_of_the_flood_layer():
    storm = DAY - dt.timedelta(days=20)  # outside the trailing 14 days of the flowering phase
    row = only_row(weather("st-a", changes={storm: {"rain_mm": 200.0}}))
    assert (row["rx1day_mm"], row["rx3day_mm"], row["rx5day_mm"]) == (200.0, 210.0, 220.0)
    assert (row["r10mm"], row["r20mm"], row["rain_30d_mm"]) == (1, 1, 345.0)
    layers = json.loads(row["layers"])
    assert layers["flood_daily"] == pytest.approx((200 - 150) / (300 - 150), abs=1e-6)
    assert layers["flood_3day"] == pytest.approx((210 - 200) / (400 - 200), abs=1e-6)
    assert row["flood_stress"] == pytest.approx(1 / 3)  # a peril's stress is its worst layer
    assert row["worst_14d_rain_mm"] == 70.0 and row["drought_stress"] == 0
    assert row["weather_stress"] == pytest.approx(1 / 3)


def test_a_hot_last_week_drives_the_heat_layers():
    hot_week = {day: {"tmax_c": 38.0} for day in days_before(DAY, 7)}
    earlier_spike = {DAY - dt.timedelta(days=20): {"tmax_c": 39.0}}  # counts in degree days, not in last-week max
    row = only_row(weather("st-a", changes=hot_week | earlier_spike))
    assert row["tmax_max_c"] == 38.0
    assert row["heat_days"] == 8
    assert row["heat_degree_days"] == 7 * 3 + 4
    layers = json.loads(row["layers"])
    assert layers["heat_tmax"] == pytest.approx((38 - 35) / (40 - 35))
    assert layers["heat_degree_days"] == pytest.approx(25 / 50)
    assert row["heat_stress"] == pytest.approx(0.6)
    assert row["weather_stress"] == pytest.approx(0.6)
    assert row["tmax_c"] == 38.0 and row["tmin_c"] == 18.0 and row["tmean_c"] == 24.0


def test_stations_and_weights_of_the_day_are_recorded():
    station_days = pd.concat([weather("st-near", rain=10.0), weather("st-far", rain=20.0, tmax=25.0)])
    table = plots(("plot-1", maize()))
    assignments = assign(("plot-1", "st-far", 2.0), ("plot-1", "st-near", 1.0))
    row = compute_weather_indices(table, assignments, station_days, [DAY]).iloc[0]
    # inverse distance squared: 1 and 1/4, normalised 0.8 and 0.2
    assert row["n_stations"] == 2
    assert json.loads(row["stations"]) == ["st-near", "st-far"]
    assert json.loads(row["weights"]) == pytest.approx([0.8, 0.2])
    assert row["rain_mm"] == pytest.approx(12.0) and row["tmax_c"] == pytest.approx(29.0)
    assert row["rain_7d_mm"] == pytest.approx(84.0)
    nearest_only = compute_weather_indices(table, assignments, station_days, [DAY], max_stations=1).iloc[0]
    assert (nearest_only["n_stations"], nearest_only["rain_mm"]) == (1, 10.0)
    assert json.loads(nearest_only["stations"]) == ["st-near"] and json.loads(nearest_only["weights"]) == [1]


def test_days_without_a_passing_station_are_missing_never_zero_rain():
    # st-a's gauge fails the coverage gate on the last 20 days; plot-2 has no station at all
    failing = {day: {"coverage": 0.5} for day in days_before(DAY, 20)}
    result = compute_weather_indices(
        plots(("plot-1", maize()), ("plot-2", maize())),
        assign(("plot-1", "st-a", 3.0)),
        weather("st-a", changes=failing),
        [DAY],
    )
    gapped, unserved = rows_by_plot(result)["plot-1"], rows_by_plot(result)["plot-2"]
    assert np.isnan(gapped["rain_mm"]) and gapped["n_stations"] == 0
    assert gapped["stations"] is None and gapped["weights"] is None
    assert gapped["missing_days"] == 20 and unserved["missing_days"] == 67
    for row in (gapped, unserved):
        # as zero rain these would be a 20+ day dry spell and a full drought
        assert row[list(INDEX_COLUMNS)].isna().all()
        assert row[list(STRESSES)].isna().all()
        assert row["in_season"] and row["window_days"] == 67
    assert "rain: 20 of 67 days missing > 10%" in gapped["missing_reason"]
    assert "tmax: 20 of 67 days missing > 10%" in gapped["missing_reason"]
    assert "worst 14-day rain: 14 of 14 days missing > 10%" in gapped["missing_reason"]
    assert "rain: 67 of 67 days missing > 10%" in unserved["missing_reason"]


def test_a_few_missing_days_within_the_gate_are_skipped_not_read_as_dry():
    # 6 of 67 days missing passes the 10% gate (6 <= 6.7)
    failing = {DAY - dt.timedelta(days=k): {"qod": 0.2} for k in range(30, 36)}
    row = only_row(weather("st-a", changes=failing))
    assert row["missing_days"] == 6
    assert row["cdd"] == 0  # a missing day is no dry day
    assert row["rain_window_mm"] == 61 * 5.0 and row["rain_30d_mm"] == 150.0
    assert row["drought_stress"] == 0 and row["weather_stress"] == 0
    assert row["missing_reason"] == NO_SPI
    # the same days fail a stricter policy gate
    strict = only_row(weather("st-a", changes=failing), maize(max_missing_share="0.05"))
    assert np.isnan(strict["cdd"]) and np.isnan(strict["weather_stress"])
    assert "rain: 6 of 67 days missing > 5%" in strict["missing_reason"]


def test_a_stress_left_missing_on_the_first_season_days_says_why():
    # Rx3day needs 3 days of window: on the sowing day and the next its flood layer is not computed
    days = [SOWN, SOWN + dt.timedelta(days=1), SOWN + dt.timedelta(days=2)]
    result = compute_weather_indices(
        plots(("plot-1", maize())), assign(("plot-1", "st-a", 3.0)), weather("st-a", days[-1], n=92), days
    )
    assert result["rx3day_mm"].isna().tolist() == [True, True, False]
    assert result["weather_stress"].iloc[2] == 0
    for _, row in result.iterrows():
        stress, reason = row["weather_stress"], row["missing_reason"]
        assert np.isfinite(stress) or (reason is not None and reason != NO_SPI), (
            f"{row['day']}: weather_stress {stress} with missing_reason {reason!r}"
        )


def test_policy_layers_and_weights_override_the_defaults():
    own_drought = {"drought_rain": {"peril": "drought", "index": "worst_14d_rain_mm", "trigger": "80", "exit": "10"}}
    result = compute_weather_indices(
        plots(
            ("plot-default", maize()),
            ("plot-policy", maize(layers=own_drought)),
            ("plot-half", maize(layers=own_drought, peril_weights={"drought": "0.5"})),
        ),
        assign(("plot-default", "st-a", 3.0), ("plot-policy", "st-a", 3.0), ("plot-half", "st-a", 3.0)),
        weather("st-a"),
        [DAY],
    )
    by_plot = rows_by_plot(result)
    assert by_plot["plot-default"]["drought_stress"] == 0  # 70 mm is above the default trigger of 30 mm
    policy = by_plot["plot-policy"]
    assert policy["worst_14d_rain_mm"] == 70.0
    assert json.loads(policy["layers"]) == {"drought_rain": pytest.approx((80 - 70) / (80 - 10), abs=1e-6)}
    assert policy["drought_stress"] == pytest.approx(1 / 7)
    assert np.isnan(policy["flood_stress"]) and np.isnan(policy["heat_stress"])  # no layer, no peril
    assert policy["weather_stress"] == pytest.approx(1 / 7)
    assert by_plot["plot-half"]["weather_stress"] == pytest.approx(0.5 / 7)


def test_policy_terms_as_json_text_give_the_same_rows():
    storm = {DAY - dt.timedelta(days=3): {"rain_mm": 180.0, "tmax_c": 39.0}}
    station_days = pd.concat([weather("st-a", changes=storm), weather("st-b", rain=0.0)])
    heat_days_layer = {"heat": {"peril": "heat", "index": "heat_days", "trigger": "0", "exit": "10"}}
    terms = [maize(), resolve_terms("beans", {"heat_threshold_c": "30", "layers": heat_days_layer})]
    assignments = assign(("plot-1", "st-a", 3.0), ("plot-2", "st-a", 4.0), ("plot-2", "st-b", 8.0))
    days = [DAY - dt.timedelta(days=1), DAY]
    as_dicts = compute_weather_indices(
        plots(("plot-1", terms[0]), ("plot-2", terms[1])), assignments, station_days, days
    )
    as_text = compute_weather_indices(
        plots(("plot-1", json.dumps(terms[0])), ("plot-2", json.dumps(terms[1]))), assignments, station_days, days
    )
    # same layer fractions; the JSON object's key order may follow the policy text
    pd.testing.assert_series_equal(as_text.pop("layers").map(json.loads), as_dicts.pop("layers").map(json.loads))
    pd.testing.assert_frame_equal(as_text, as_dicts)
    # the beans policy counts days above 30 C: the 39 C day
    assert rows_by_plot(as_dicts)["plot-2"]["heat_days"] == 1
    assert rows_by_plot(as_dicts)["plot-2"]["heat_stress"] == pytest.approx(0.1)


def test_spi_is_missing_without_policy_gamma_parameters():
    row = only_row(weather("st-a"))
    assert np.isnan(row["spi_1"]) and np.isnan(row["spi_3"])
    assert "gamma parameters" in row["missing_reason"]


def test_spi_1_from_policy_gamma_parameters_matches_scipy():
    # last complete month of 2025-05-20 is April (inside the window from 2025-02-20): 30 days x 2 mm
    april = {day: {"rain_mm": 2.0} for day in days_before(dt.date(2025, 4, 30), 30)}
    row = only_row(weather("st-a", changes=april), maize(spi=GAMMA_2_30))
    expected = stats.norm.ppf(stats.gamma.cdf(60.0, a=2, scale=30))
    assert row["spi_1"] == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.2380, abs=1e-3)
    # February is only partly inside the 90 days loaded, so no 3-month total
    assert np.isnan(row["spi_3"])
    assert row["missing_reason"] == "spi_3: rain of months to 2025-04 incomplete in the window"


def test_spi_3_when_station_days_cover_the_last_three_months():
    # Station days from 2025-02-01 hold February to April in full: SPI-3 of April can be computed.
    # (A 90-day window holds three whole months plus the current one on only a few days a year.)
    n_days = (DAY - dt.date(2025, 2, 1)).days + 1
    row = only_row(weather("st-a", rain=1.0, n=n_days), maize(spi=GAMMA_2_30))
    total = 1.0 * (28 + 31 + 30)
    assert row["spi_3"] == pytest.approx(stats.norm.ppf(stats.gamma.cdf(total, a=2, scale=30)), abs=1e-9)
