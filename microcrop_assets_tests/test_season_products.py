"""The season demo's products: triggers priced on the sandbox's climate (season.calibration)."""

import json
from decimal import Decimal

import numpy as np
import pytest

from microcrop_assets.science.policy import DEFAULT_TERMS
from microcrop_assets.season.calibration import (
    PRODUCTS_FILE,
    price_products,
    priced_layer,
    reach_share,
    season_worst_indices,
)
from microcrop_assets.season.files import SEASON_PLOTS_FILE
from microcrop_assets.season.plot_generator import generate, region_of, subset

pytestmark = pytest.mark.unit

RAIN = DEFAULT_TERMS["layers"]["drought_rain"]  # deficit: 30 -> 5 mm
DRY_SPELL = DEFAULT_TERMS["layers"]["drought_dry_spell"]  # excess: 7 -> 14 days


def test_a_deficit_trigger_moves_to_the_one_in_ten_level_and_keeps_the_exit_ratio():
    values = np.linspace(0.0, 100.0, 1001)  # 10th percentile: 10.0
    layer = priced_layer(RAIN, values, return_period=10)
    assert (layer["trigger"], layer["exit"]) == ("10.0", "1.6")  # 10 x 5/30 = 1.67, floored
    assert reach_share(layer, values) == pytest.approx(0.1, abs=0.002)
    assert reach_share(RAIN, values) == pytest.approx(0.3, abs=0.002)


def test_an_excess_trigger_moves_to_the_one_in_ten_level_and_keeps_the_width():
    values = np.linspace(0.0, 20.0, 2001)  # 90th percentile: 18.0
    layer = priced_layer(DRY_SPELL, values, return_period=10)
    assert (layer["trigger"], layer["exit"]) == ("18.0", "25.0")
    assert layer["peril"] == "drought" and layer["index"] == "cdd"


def test_a_climate_where_the_default_is_already_rare_keeps_the_default():
    assert priced_layer(DRY_SPELL, np.linspace(0, 5, 100)) == {**DRY_SPELL, "trigger": "7", "exit": "14"}
    assert priced_layer(RAIN, np.linspace(50, 90, 100)) == {**RAIN, "trigger": "30", "exit": "5"}


def test_missing_history_is_refused_naming_the_index():
    with pytest.raises(ValueError, match="worst_14d_rain_mm: no season"):
        priced_layer(RAIN, np.array([np.nan, np.nan]))


def test_the_shipped_plots_carry_their_regions_priced_products():
    products = json.loads(PRODUCTS_FILE.read_text(encoding="utf-8"))
    shipped = json.loads(SEASON_PLOTS_FILE.read_text(encoding="utf-8"))
    # the shipped file is exactly what the generator writes from the shipped products
    assert shipped == generate(products=products["regions"])
    for feature in shipped["features"]:
        region = region_of(feature["properties"]["plot_id"])
        assert feature["properties"]["policy_terms"]["layers"] == products["regions"][region]["layers"]
    for region, product in products["regions"].items():
        for name, evidence in product["normal_climate"].items():
            # priced to be reached at most once in ten plot-seasons of the normal climate (rounding
            # towards the rare side), where the defaults were reached up to every season
            assert evidence["priced_reached"] <= 0.1 + 1e-9, (region, name, evidence)
            assert evidence["priced_reached"] <= evidence["default_reached"]
        layers = product["layers"]
        assert Decimal(layers["drought_rain"]["trigger"]) <= Decimal(RAIN["trigger"])
        assert Decimal(layers["drought_dry_spell"]["trigger"]) >= Decimal(DRY_SPELL["trigger"])


def test_a_short_history_through_the_pipeline_code_prices_every_region():
    document = subset(json.loads(SEASON_PLOTS_FILE.read_text(encoding="utf-8")), 8)
    history = season_worst_indices(document, years=2, last_year=2024)
    assert len(history) == 16 and set(history["year"]) == {2023, 2024}
    assert set(history.columns) >= set(DEFAULT_TERMS["layers"]) | {"plot_id", "region"}
    assert history[list(DEFAULT_TERMS["layers"])].notna().all().all()
    products = price_products(history)
    assert sorted(products) == ["KE-BUS", "KE-KAK", "KE-KER", "KE-KIS"]
    for region, product in products.items():
        samples = int((history["region"] == region).sum())  # 2 plots x 2 seasons: 1 in 4 at the least
        for name, layer in product["layers"].items():
            evidence = product["normal_climate"][name]
            assert evidence["priced_reached"] <= max(0.1, 1 / samples) + 1e-9, (name, layer)
            assert evidence["priced_reached"] <= evidence["default_reached"]
