"""Layer fractions (deficit and excess) and their weighted combination."""

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from microcrop_assets.science.layers import combine_stress, layer_fraction

pytestmark = pytest.mark.unit


def test_worked_example_of_science_md_section_6():
    germination = layer_fraction(32.0, trigger=40.0, exit=10.0)  # deficit: 8 of 30 mm
    vegetative = layer_fraction(18.0, trigger=30.0, exit=5.0)  # worst 14-day total
    flowering = layer_fraction(41.0, trigger=35.0, exit=10.0)  # above the trigger: no loss
    excess = layer_fraction(210.0, trigger=180.0, exit=280.0)  # Rx5day
    assert germination == pytest.approx(0.266667, abs=1e-6)
    assert vegetative == pytest.approx(0.48)
    assert flowering == 0.0
    assert excess == pytest.approx(0.3)
    # weighted as in the example (0.2, 0.4, 0.4, 0.3): 533 + 1920 + 0 + 900 = 3,353 of 10,000
    stress = combine_stress(
        {"germination": germination, "vegetative": vegetative, "flowering": flowering, "excess": excess},
        {"germination": 0.2, "vegetative": 0.4, "flowering": 0.4, "excess": 0.3},
    )
    assert round(stress * 10_000) == 3353


def test_deficit_and_excess_clip_at_trigger_and_exit():
    rain = np.array([50.0, 40.0, 25.0, 10.0, 0.0, np.nan])
    np.testing.assert_allclose(layer_fraction(rain, 40.0, 10.0), [0.0, 0.0, 0.5, 1.0, 1.0, np.nan])
    heat_days = pd.Series([0.0, 5.0, 10.0, 20.0, np.nan], index=list("abcde"), name="heat_days")
    fraction = layer_fraction(heat_days, trigger=5, exit=15)
    assert fraction.index.tolist() == list("abcde") and fraction.name == "heat_days"
    np.testing.assert_allclose(fraction.to_numpy(), [0.0, 0.0, 0.5, 1.0, np.nan])
    assert np.isnan(layer_fraction(float("nan"), 1.0, 2.0))


def test_policy_terms_as_decimals_and_per_plot_arrays():
    assert layer_fraction(20.0, Decimal("30"), Decimal("5")) == pytest.approx(0.4)
    per_plot = layer_fraction(np.array([20.0, 20.0]), trigger=np.array([30.0, 25.0]), exit=np.array([10.0, 15.0]))
    np.testing.assert_allclose(per_plot, [0.5, 0.5])


def test_trigger_equal_to_exit_is_an_error_naming_both():
    with pytest.raises(ValueError, match="trigger 30.0 equals exit 30.0"):
        layer_fraction(12.0, 30, 30)
    with pytest.raises(ValueError, match=r"trigger 25.0 equals exit 25.0 at position \[1\]"):
        layer_fraction(np.array([1.0, 2.0]), np.array([30.0, 25.0]), 25.0)


def test_combine_caps_and_treats_missing_layers_explicitly():
    drought = np.array([0.5, 0.9, np.nan, np.nan, 0.2])
    flood = np.array([0.2, 0.6, 0.1, 0.0, 0.0])
    heat = np.array([0.0, 0.0, 0.0, 1.0, np.nan])
    stress = combine_stress(
        {"drought": drought, "flood": flood, "heat": heat}, {"drought": 1.0, "flood": 1.0, "heat": 0.5}
    )
    assert stress[0] == pytest.approx(0.7)
    assert stress[1] == 1.0  # capped
    assert np.isnan(stress[2])  # drought unknown and the rest is below the cap
    assert np.isnan(stress[3])  # heat 1.0 x 0.5 does not reach the cap either
    assert np.isnan(stress[4])
    capped_anyway = combine_stress({"drought": np.nan, "flood": 1.0}, {"drought": 1.0, "flood": 1.0})
    assert capped_anyway == 1.0  # the missing layer could only add to a full stress
    ignored = combine_stress({"drought": np.nan, "flood": 0.4}, {"drought": Decimal("0"), "flood": Decimal("1")})
    assert ignored == pytest.approx(0.4)
    assert combine_stress({"a": 0.6, "b": 0.6}, {"a": 1, "b": 1}, cap=0.8) == pytest.approx(0.8)


def test_combine_rejects_mismatched_or_invalid_terms():
    with pytest.raises(ValueError, match="same layers"):
        combine_stress({"drought": 0.1}, {"drought": 1.0, "flood": 1.0})
    with pytest.raises(ValueError, match="weight of layer 'flood' is -1.0"):
        combine_stress({"flood": 0.1}, {"flood": -1})
    with pytest.raises(ValueError, match="outside 0..1"):
        combine_stress({"flood": 1.5}, {"flood": 1})
