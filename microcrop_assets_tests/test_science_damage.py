"""science/damage.py: the worked example, money rounding, deductible/franchise, caps, sources and confidence.

Oracles are independent of the code under test: exact rational arithmetic (fractions.Fraction) with
explicit half-up rounding, and hand-computed values from science.md section 6.
"""

import datetime as dt
import json
import random
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from microcrop_assets.science.damage import (
    METHOD_VERSION,
    OUTPUT_COLUMNS,
    AssessmentInputError,
    assess_inputs,
    assess_one,
    json_value,
    layer_share,
    money,
    severity,
    to_bps,
)
from microcrop_assets.science.policy import CROP_CALENDARS, PolicyTermsError, growth_stage, resolve_terms

from .fixtures.damage import USDC, inputs_doc

pytestmark = pytest.mark.unit


def half_up(value: Fraction) -> int:
    """Round a non-negative rational half-up to an integer (the oracle's own rounding)."""
    return int((value * 2 + 1) // 2)


def D(values) -> np.ndarray:
    return np.array([Decimal(str(v)) for v in values], dtype=object)


def test_worked_multi_phase_example_reproduced_exactly():
    """science.md 6: 533 / 1,920 / 0 / 900, gross 3,353, net 1,853 with a 15 % deductible (sum insured 10,000)."""
    x, trigger, exit_ = D([32, 18, 41, 210]), D([40, 30, 35, 180]), D([10, 5, 10, 280])
    weights = D(["0.2", "0.4", "0.4", "0.3"])
    fractions = layer_share(x, trigger, exit_)
    assert list(fractions) == [Decimal("0.266666666667"), Decimal("0.48"), 0, Decimal("0.3")]
    sum_insured = 10_000 * USDC
    phase_shares = np.array([(w * f).quantize(Decimal("1e-12")) for w, f in zip(weights, fractions, strict=True)])
    phase_payouts = money(np.full(4, sum_insured, dtype=object), phase_shares)
    assert [round(p / USDC) for p in phase_payouts] == [533, 1_920, 0, 900]
    # oracle: exact rationals, then half-up to the micro-USDC
    exact = [
        Fraction(2, 10) * Fraction(8, 30),
        Fraction(4, 10) * Fraction(12, 25),
        0,
        Fraction(3, 10) * Fraction(3, 10),
    ]
    assert (
        list(phase_payouts) == [half_up(sum_insured * f) for f in exact] == [533_333_333, 1_920_000_000, 0, 900_000_000]
    )
    gross = sum(phase_shares)
    assert money(np.array([sum_insured], dtype=object), np.array([gross], dtype=object))[0] == 3_353_333_333

    # the gross damage through the assessment: weather only, vegetative stage (x 1.0), 15 % deductible
    result = assess_one(inputs_doc(str(gross), terms={"deductible": "0.15"}))
    assert result["growth_stage"] == "vegetative" and result["sources"] == ["weather"]
    assert result["payout_micro_usdc"] == half_up(sum_insured * (sum(Fraction(e) for e in exact) - Fraction(15, 100)))
    assert round(result["payout_micro_usdc"] / USDC) == 1_853
    assert result["damage_bps"] == 3_353 and result["triggered"] is True


@pytest.mark.parametrize(
    ("share", "bps"),
    [("0.00005", 1), ("0.00015", 2), ("0.00025", 3), ("0.12345", 1235), ("0.99995", 10_000), ("0.000049999999", 0)],
)
def test_basis_points_round_half_up_at_the_half_way_edge(share, bps):
    # half-even would give 0, 2, 2, 1234 for the first four
    assert to_bps(D([share]))[0] == bps
    assert assess_one(inputs_doc(share, terms={"trigger_threshold": "0"}))["damage_bps"] == bps


@pytest.mark.parametrize(("amount", "share", "expected"), [(1, "0.5", 1), (3, "0.5", 2), (5, "0.5", 3), (7, "0.5", 4)])
def test_micro_usdc_round_half_up_at_the_half_way_edge(amount, share, expected):
    assert money(np.array([amount], dtype=object), D([share]))[0] == expected
    terms = {"trigger_threshold": "0", "deductible": "0"}
    assert assess_one(inputs_doc(share, terms=terms, sum_insured=amount))["payout_micro_usdc"] == expected


def test_deductible_is_subtracted_and_franchise_pays_all_or_nothing():
    s = 1_000 * USDC
    assert assess_one(inputs_doc("0.5", sum_insured=s))["payout_micro_usdc"] == 400 * USDC  # default 10 %
    assert assess_one(inputs_doc("0.09", sum_insured=s, terms={"trigger_threshold": "0"}))["payout_micro_usdc"] == 0
    franchise = {"franchise": "0.3", "trigger_threshold": "0.1"}
    below = assess_one(inputs_doc("0.299999999999", sum_insured=s, terms=franchise))
    at = assess_one(inputs_doc("0.3", sum_insured=s, terms=franchise))
    assert below["triggered"] and below["payout_micro_usdc"] == 0
    assert at["payout_micro_usdc"] == 300 * USDC  # in full, no deduction


def test_nothing_paid_below_the_trigger_threshold():
    result = assess_one(inputs_doc("0.29", terms={"trigger_threshold": "0.3"}))
    assert result["triggered"] is False and result["payout_micro_usdc"] == 0 and result["damage_bps"] == 2_900


def test_payout_capped_at_max_payout_and_by_earlier_payouts_of_the_season():
    s = 1_000 * USDC
    capped = assess_one(inputs_doc("1", sum_insured=s, max_payout=250 * USDC))
    assert capped["entitlement_micro_usdc"] == capped["payout_micro_usdc"] == 250 * USDC
    top_up = assess_one(inputs_doc("0.6", sum_insured=s, season_paid=300 * USDC))
    assert top_up["entitlement_micro_usdc"] == 500 * USDC and top_up["payout_micro_usdc"] == 200 * USDC
    assert assess_one(inputs_doc("0.3", sum_insured=s, season_paid=300 * USDC))["payout_micro_usdc"] == 0


def test_season_payouts_never_exceed_max_payout_or_sum_insured_over_random_terms():
    """Property over 400 random policies x 12 days, assessed together each day (heterogeneous terms)."""
    rng = random.Random(20250601)
    plots = []
    for i in range(400):
        s = rng.randint(1, 50_000 * USDC)
        terms = {
            "trigger_threshold": str(rng.choice([0, 0.1, 0.3, 0.5])),
            "stage_sensitivity": {"flowering": str(rng.choice([1.5, 3, 0.5]))},
        }
        if rng.random() < 0.5:
            terms["deductible"] = str(round(rng.random() * 0.3, 4))
        else:
            terms["franchise"] = str(round(rng.random() * 0.5, 4))
        plots.append(
            {
                "id": f"R{i}",
                "sum": s,
                "max": rng.randint(1, s),
                "terms": terms,
                "sowing": dt.date(2025, 3, 1) + dt.timedelta(days=rng.randint(0, 60)),
            }
        )
    paid = {p["id"]: 0 for p in plots}
    worst = {p["id"]: 0 for p in plots}
    for offset in range(12):
        day = dt.date(2025, 5, 1) + dt.timedelta(days=offset * 3)
        docs = [
            inputs_doc(
                str(round(rng.random(), rng.randint(1, 12))),
                day=day.isoformat(),
                sowing_date=p["sowing"].isoformat(),
                plot_id=p["id"],
                terms=p["terms"],
                sum_insured=p["sum"],
                max_payout=p["max"],
                season_paid=paid[p["id"]],
            )
            for p in plots
        ]
        rows = assess_inputs(docs)
        for p, (_, row) in zip(plots, rows.iterrows(), strict=True):
            assert 0 <= row["payout_micro_usdc"] <= p["max"] <= p["sum"]
            paid[p["id"]] += row["payout_micro_usdc"]
            worst[p["id"]] = max(worst[p["id"]], row["entitlement_micro_usdc"])
            assert paid[p["id"]] <= min(p["max"], p["sum"])
            assert paid[p["id"]] == worst[p["id"]]  # the season pays its worst day, once


def test_without_valid_imagery_the_assessment_is_weather_only_with_lower_confidence():
    ndvi = {"day": "2025-05-30", "ndvi_mean": 0.45, "valid_fraction": 0.9}
    baseline = {"ndvi_mean": "0.6", "ndvi_std": "0.05"}
    both = assess_one(inputs_doc("0.5", ndvi=ndvi, baseline=baseline))
    assert both["sources"] == ["weather", "satellite"]
    assert both["weights"] == {"weather": "0.600000000000", "satellite": "0.400000000000"}
    # decline (0.6 - 0.45) / 0.6 = 0.25 -> 0.25 / 0.4 = 0.625 of the satellite layer
    assert Decimal(both["satellite_damage"]) == Decimal("0.625") and both["satellite_damage_bps"] == 6_250
    assert Decimal(both["damage"]) == Decimal("0.6") * Decimal("0.5") + Decimal("0.4") * Decimal("0.625")
    assert Decimal(both["confidence"]) == Decimal("0.96")  # 0.6 x 1 + 0.4 x 0.9 valid pixels

    cases = {
        "none": (None, None),
        "stale": ({**ndvi, "day": "2025-05-01"}, baseline),  # 31 days old, policy allows 14
        "cloudy": ({**ndvi, "valid_fraction": 0.3}, baseline),
        "no baseline": (ndvi, None),
        "flat baseline": (ndvi, {"ndvi_mean": "0", "ndvi_std": "0"}),
    }
    for name, (image, base) in cases.items():
        only = assess_one(inputs_doc("0.5", ndvi=image, baseline=base))
        assert only["sources"] == ["weather"], name
        assert only["weights"] == {"weather": "1.000000000000"} and only["satellite_damage"] is None, name
        assert Decimal(only["confidence"]) == Decimal("0.6") < Decimal(both["confidence"]), name
        assert only["damage"] == "0.500000000000" and only["missing_reason"].startswith("satellite"), name


def test_weights_renormalise_to_satellite_alone_and_no_source_means_no_assessment():
    ndvi = {"day": "2025-06-01", "ndvi_mean": "0.3", "valid_fraction": "1"}
    sat_only = assess_one(inputs_doc(None, ndvi=ndvi, baseline={"ndvi_mean": "0.6"}))
    assert sat_only["sources"] == ["satellite"] and sat_only["weights"] == {"satellite": "1.000000000000"}
    assert sat_only["damage"] == "1.000000000000" and sat_only["confidence"] == "0.4000"
    nothing = assess_one(inputs_doc(None))
    assert nothing["damage"] is None and nothing["payout_micro_usdc"] == 0 and "weather" in nothing["missing_reason"]


def test_zscore_method_uses_the_ibli_layer():
    terms = {
        "satellite": {"method": "zscore", "trigger": "-0.842", "exit": "-2.326"},
        "weights": {"weather": "0", "satellite": "1"},
    }
    # z = (0.4416 - 0.6) / 0.1 = -1.584, halfway from -0.842 to -2.326
    doc = inputs_doc(
        "0",
        terms=terms,
        ndvi={"day": "2025-06-01", "ndvi_mean": "0.4416", "valid_fraction": "1"},
        baseline={"ndvi_mean": "0.6", "ndvi_std": "0.1"},
    )
    result = assess_one(doc)
    assert result["satellite_damage"] == "0.500000000000" and result["damage_bps"] == 5_000


def test_growth_stage_and_multiplier_follow_the_crop_calendar():
    sowing = dt.date(2025, 3, 1)
    docs, days = [], [sowing + dt.timedelta(days=d) for d in range(0, 160, 7)]
    for i, day in enumerate(days):
        docs.append(inputs_doc("0.5", day=day.isoformat(), sowing_date=sowing.isoformat(), plot_id=f"G{i}"))
    rows = assess_inputs(docs)
    expected = [growth_stage(CROP_CALENDARS["maize"], sowing, day) for day in days]
    assert list(rows["growth_stage"]) == expected
    sensitivity = {
        "germination": "0.6",
        "vegetative": "0.5",
        "flowering": "0.75",
        "fruiting": "0.65",
        "maturity": "0.4",
        "senescence": "0.25",
    }  # 0.5 x the default multipliers
    assert [str(d) for d in rows["damage"]] == [f"{Decimal(sensitivity[s]):.12f}" for s in expected]
    flowering = assess_one(inputs_doc("0.9", day="2025-05-05", sowing_date="2025-03-01"))
    assert flowering["growth_stage"] == "flowering" and flowering["damage"] == "1.000000000000"  # capped at 1


def test_severity_bands_at_their_edges():
    bands = severity(D(["0", "0.199999999999", "0.2", "0.4", "0.599999999999", "0.6", "0.8", "1"]))
    assert list(bands) == ["none", "none", "minor", "moderate", "moderate", "severe", "catastrophic", "catastrophic"]


def test_vectorised_path_agrees_with_assess_one_and_inputs_round_trip_through_json():
    rng = random.Random(7)
    docs = []
    for i in range(150):
        image = None
        if rng.random() < 0.6:
            image = {
                "day": f"2025-06-{rng.randint(1, 20):02d}",
                "ndvi_mean": repr(rng.uniform(0.1, 0.8)),
                "valid_fraction": repr(rng.random()),
            }
        base = {"ndvi_mean": repr(rng.uniform(0.2, 0.8)), "ndvi_std": repr(rng.uniform(0, 0.1))}
        stress = None if rng.random() < 0.1 else repr(rng.random())
        terms = rng.choice([None, {"deductible": "0.05"}, {"franchise": "0.25", "trigger_threshold": "0.2"}])
        docs.append(
            inputs_doc(
                stress,
                day="2025-06-20",
                plot_id=f"V{i}",
                terms=terms,
                ndvi=image,
                baseline=base if rng.random() < 0.8 else None,
                missing_days=rng.randint(0, 5),
            )
        )
    rows = assess_inputs(docs)
    for doc, (_, row) in zip(docs, rows.iterrows(), strict=True):
        single = assess_one(json.loads(json.dumps(doc)))  # what a proof holds: JSON text
        assert single == {c: json_value(row[c]) for c in OUTPUT_COLUMNS}
    assert rows["damage"].notna().sum() > 100 and (rows["sources"].map(len) == 2).sum() > 15


def test_an_implausible_weather_stress_drops_that_plots_weather_only():
    rows = assess_inputs([inputs_doc("1.5", plot_id="BAD"), inputs_doc("0.5", plot_id="OK")])
    assert rows["damage"][0] is None and rows["missing_reason"][0].startswith("weather: weather_stress outside 0..1")
    assert rows["damage"][1] == Decimal("0.5") and rows["missing_reason"][1].startswith("satellite")


def test_bad_inputs_name_the_plot_and_the_field():
    with pytest.raises(AssessmentInputError, match=r"plot P1: weather_stress='abc' is not a number"):
        assess_one(inputs_doc("abc"))
    with pytest.raises(AssessmentInputError, match=r"plot 'P1'.*method 'damage-0'.*" + METHOD_VERSION):
        assess_one({**inputs_doc("0.5"), "method_version": "damage-0"})
    with pytest.raises(AssessmentInputError, match=r"P1: day 2025-04-01 is before sowing"):
        assess_one(inputs_doc("0.5", day="2025-04-01"))


def test_new_satellite_terms_are_validated():
    terms = resolve_terms("maize", None)["satellite"]
    assert terms["max_age_days"] == 14 and terms["min_valid_fraction"] == "0.5"
    for given, field in (
        ({"max_age_days": -1}, "satellite.max_age_days"),
        ({"max_age_days": "14"}, "satellite.max_age_days"),
        ({"min_valid_fraction": "1.5"}, "satellite.min_valid_fraction"),
        ({"trigger": "0.4", "exit": "0.4"}, "satellite.exit"),
    ):
        with pytest.raises(PolicyTermsError) as raised:
            resolve_terms("maize", {"satellite": given})
        assert raised.value.field == field


def test_stored_numbers_are_written_positionally_as_the_proof_schema_requires():
    """A zero read back from numeric(.., 12) is Decimal('0E-12') and a tiny station weight reprs as
    5.5e-05: both must reach the inputs and outputs in the proof schema's plain decimal form."""
    from microcrop_assets.defs.damage.assets import _number
    from microcrop_assets.proofs.document import schema_path

    plain = json.loads(schema_path("damage-2").read_text())["$defs"]["decimal"]["pattern"]
    for written in (json_value(Decimal("0E-12")), _number(5.556762280830521e-05), _number(1e16), _number(0.1)):
        assert re.fullmatch(plain, written), written
    assert Decimal(_number(5.556762280830521e-05)) == Decimal(repr(5.556762280830521e-05))  # same value, exactly
    assert json_value(Decimal("0E-12")) == "0.000000000000"
