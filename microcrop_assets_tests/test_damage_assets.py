"""damage_assessments materialized against PostgreSQL: selection of plots and imagery, idempotent reruns,
season payouts, stored inputs that recompute the stored outputs."""

import datetime as dt
import json
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.defs.damage.assets import damage_assessments
from microcrop_assets.science.damage import OUTPUT_COLUMNS, assess_one, assessment_id, json_value

from .fixtures.damage import USDC, add_baseline, add_ndvi, add_plot, add_weather

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 6, 10)  # 70 days after the 2025-04-01 sowing: flowering for maize (x 1.5)


def materialize(db, day: dt.date = DAY) -> dg.MaterializeResult:
    result = dg.materialize([damage_assessments], resources={"timescaledb": db}, partition_key=day.isoformat())
    assert result.success
    return result


def stored(db, day: dt.date = DAY) -> dict[str, dict]:
    frame = db.read_frame("SELECT * FROM damage_assessments WHERE day = :d ORDER BY plot_id", {"d": day})
    frame = frame.astype(object).where(frame.notna(), None)
    return {row["plot_id"]: row for row in frame.to_dict("records")}


def as_output(row: dict) -> dict:
    """A stored row in the JSON form assess_one returns."""
    values = {c: json_value(row[c]) for c in OUTPUT_COLUMNS}
    values["weights"] = row["weights"]
    values["assessed_at"] = row["assessed_at"].astimezone(dt.UTC).isoformat()
    return values


def test_assessments_cover_in_season_plots_with_their_sources(damage_db):
    db = damage_db
    for plot_id in ("A", "B", "C", "F"):
        add_plot(db, plot_id)
    add_plot(db, "D", sowing=dt.date(2025, 6, 20), season_end=dt.date(2025, 10, 1))  # not sown yet
    add_plot(db, "E", active=False)
    for plot_id in ("A", "B", "C", "D", "E"):
        add_weather(db, plot_id, DAY, 0.4)
    add_weather(db, "F", DAY, None)  # incomplete weather window and no imagery: not assessable
    add_ndvi(db, "A", DAY - dt.timedelta(days=3), 0.39)
    add_ndvi(db, "A", DAY - dt.timedelta(days=1), 0.36, valid_fraction=0.2)  # too cloudy: the older one counts
    add_baseline(db, "A", dt.date(2025, 6, 1), 0.6)
    add_baseline(db, "A", dt.date(2025, 6, 8), 0.9)  # a week starting after the NDVI day: not its baseline
    add_ndvi(db, "C", DAY - dt.timedelta(days=20), 0.2)  # older than the 14 days the policy allows
    add_baseline(db, "C", dt.date(2025, 5, 18), 0.6)

    result = materialize(db)
    rows = stored(db)
    assert sorted(rows) == ["A", "B", "C"]
    materialization = result.asset_materializations_for_node("damage_assessments")[0]
    assert materialization.metadata["unassessed"].value == 1 and materialization.metadata["weather_only"].value == 2

    a = rows["A"]
    assert a["sources"] == ["weather", "satellite"] and a["growth_stage"] == "flowering"
    # NDVI of 06-07 (the 06-09 image is too cloudy) against the 06-01 baseline (the 06-08 week ends after 06-07)
    inputs = a["inputs"]
    assert inputs["ndvi"]["day"] == "2025-06-07" and inputs["ndvi"]["ndvi_mean"] == "0.39"
    assert inputs["baseline"]["week_start"] == "2025-06-01" and inputs["baseline"]["ndvi_mean"] == "0.6"
    assert inputs["ndvi"]["sources"][0]["ndvi_sha256"] == "ab" * 32 and inputs["baseline"]["content_hash"] == "cd" * 32
    # decline (0.6 - 0.39) / 0.6 = 0.35 -> 0.875; composite 0.6 x 0.4 + 0.4 x 0.875 = 0.59; x 1.5 flowering
    assert a["satellite_damage"] == Decimal("0.875") and a["damage"] == Decimal("0.885")
    assert a["damage_bps"] == 8_850 and a["severity"] == "catastrophic" and a["triggered"]
    assert a["payout_micro_usdc"] == 7_850 * USDC  # (0.885 - 0.10) x 10,000 USDC
    assert a["assessed_at"] == dt.datetime(2025, 6, 10, 23, 59, 59, tzinfo=dt.UTC)
    assert a["assessment_id"] == assessment_id("A", "POL-A", DAY)

    for name in ("B", "C"):
        assert rows[name]["sources"] == ["weather"] and rows[name]["satellite_damage"] is None
        assert rows[name]["confidence"] < a["confidence"] and rows[name]["damage"] == Decimal("0.6")
    assert rows["C"]["missing_reason"] == "satellite: no NDVI within max_age_days"

    # every stored row recomputes from its stored inputs alone (what a proof does)
    for row in rows.values():
        assert assess_one(json.loads(json.dumps(row["inputs"]))) == as_output(row)


def test_rerunning_a_day_replaces_its_rows_and_keeps_proven_ones(damage_db):
    db = damage_db
    for plot_id in ("A", "B", "C"):
        add_plot(db, plot_id)
        add_weather(db, plot_id, DAY, 0.3)
    materialize(db)
    first = stored(db)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE damage_assessments SET proof_cid = 'bafyproof' WHERE plot_id = 'C'"))
        conn.execute(sa.text("UPDATE plots SET active = false WHERE plot_id = 'B'"))
    for plot_id in ("A", "C"):
        add_weather(db, plot_id, DAY, 0.5)
    materialize(db)
    again = stored(db)
    assert db.read_frame("SELECT count(*) AS n FROM damage_assessments")["n"][0] == 2  # B's stale row is gone
    assert again["A"]["assessment_id"] == first["A"]["assessment_id"]
    assert again["A"]["damage"] == Decimal("0.75") and first["A"]["damage"] == Decimal("0.45")
    assert again["C"]["damage"] == first["C"]["damage"] and again["C"]["proof_cid"] == "bafyproof"  # evidence kept


def test_season_pays_its_worst_day_once_and_never_above_max_payout(damage_db):
    db = damage_db
    add_plot(db, "A", sum_insured_usdc=10_000, max_payout_usdc=6_000)
    days = [DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2), DAY + dt.timedelta(days=3)]
    # flowering x 1.5: damage 0.45, 0.6, 0.15 (below the 0.3 trigger), 1.0 -> entitlements 3,500, 5,000, 0
    # and 9,000 capped at 6,000
    for day, stress in zip(days, (0.3, 0.4, 0.1, 0.9), strict=True):
        add_weather(db, "A", day, stress)
    result = dg.materialize(
        [damage_assessments],
        resources={"timescaledb": db},
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
    )
    assert result.success
    frame = db.read_frame("SELECT day, entitlement_micro_usdc, payout_micro_usdc FROM damage_assessments ORDER BY day")
    assert list(frame["entitlement_micro_usdc"] // USDC) == [3_500, 5_000, 0, 6_000]
    assert list(frame["payout_micro_usdc"] // USDC) == [3_500, 1_500, 0, 1_000]
    assert frame["payout_micro_usdc"].sum() == 6_000 * USDC
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "season_payouts_within_sum_insured" and check.passed

    materialize(db, days[1])  # a rerun of a middle day still counts only the days before it
    assert db.read_frame("SELECT sum(payout_micro_usdc) AS s FROM damage_assessments")["s"][0] == 6_000 * USDC


def test_earlier_payouts_of_any_method_count_and_the_check_flags_an_overpaid_season(damage_db):
    db = damage_db
    add_plot(db, "A", sum_insured_usdc=1_000)
    add_weather(db, "A", DAY, 0.6)  # damage 0.9: entitled to 800

    def older_method_row(payout_usdc: int, name: str = "old", days_before: int = 1) -> None:
        with db.begin() as conn:  # a row of an older method, paid an earlier day
            conn.execute(
                sa.text(
                    "INSERT INTO damage_assessments (assessment_id, plot_id, policy_id, day, method_version, sources,"
                    " weights, confidence, growth_stage, stage_multiplier, damage, severity, triggered,"
                    " entitlement_micro_usdc, payout_micro_usdc, damage_bps, assessed_at, inputs, season_start,"
                    " sum_insured_micro_usdc) VALUES (:name, 'A', 'POL-A', :day, 'damage-0', '{weather}', '{}', 1,"
                    " 'flowering', 1, 1, 'catastrophic', true, :paid, :paid, 10000, now(), '{}', '2025-04-01',"
                    " 1000000000)"
                ),
                {"name": name, "day": DAY - dt.timedelta(days=days_before), "paid": payout_usdc * USDC},
            )

    older_method_row(700)
    check = materialize(db).get_asset_check_evaluations()[0]
    assert (
        stored(db)["A"]["payout_micro_usdc"] == 100 * USDC and stored(db)["A"]["entitlement_micro_usdc"] == 800 * USDC
    )
    assert stored(db)["A"]["inputs"]["season_paid"]["assessments"][0]["assessment_id"] == "old"
    assert check.passed

    # a season stored above its sum insured (possible only with the table's trigger disabled) is named
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM damage_assessments WHERE plot_id = 'A'"))
        conn.execute(sa.text("ALTER TABLE damage_assessments DISABLE TRIGGER USER"))
    try:
        older_method_row(600, "old-1", 1)
        older_method_row(600, "old-2", 2)
    finally:
        with db.begin() as conn:
            conn.execute(sa.text("ALTER TABLE damage_assessments ENABLE TRIGGER USER"))
    check = materialize(db).get_asset_check_evaluations()[0]
    assert not check.passed
    assert check.metadata["plots_over"].value == [
        {
            "plot_id": "A",
            "season_start": "2025-04-01",
            "paid_micro_usdc": 1_200 * USDC,
            "sum_insured_micro_usdc": 1_000 * USDC,
        }
    ]
