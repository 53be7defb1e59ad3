"""The season cap (issue 14): whatever order a plot-season's days are assessed in, rerun or run side by side,
and whatever policy id they carry, the season pays its largest entitlement once, never above the sum
insured; the table itself refuses to store a breach."""

import datetime as dt
import itertools
import json
import threading

import dagster as dg
import psycopg
import pytest
import sqlalchemy as sa

from microcrop_assets.defs.damage.assets import assess_day, assessment_inputs, damage_assessments
from microcrop_assets.defs.plots.registry import PlotsFileError, parse_plots, store_plots
from microcrop_assets.proofs.document import build_proof, recompute
from microcrop_assets.science.damage import assess_one, assessment_id

from .fixtures.damage import USDC, add_plot, add_weather
from .fixtures.proofs import chain_document, inputs_document
from .test_plots_registry import collection, feature

JUNE_10, JUNE_11 = dt.date(2025, 6, 10), dt.date(2025, 6, 11)  # flowering for a 2025-04-01 sowing (x 1.5)
# stresses 0.3, 0.4, 0.1, 0.9 x 1.5 -> damage 0.45, 0.6, 0.15 (untriggered), 1.0: entitled, with the 0.1
# deductible on 10,000 USDC, to 3,500, 5,000, 0 and 9,000 capped by the 6,000 maximum payout
DAYS = [JUNE_10 + dt.timedelta(days=i) for i in range(4)]
STRESSES = (0.3, 0.4, 0.1, 0.9)


def assess(db, day: dt.date) -> None:
    result = dg.materialize([damage_assessments], resources={"timescaledb": db}, partition_key=day.isoformat())
    assert result.success


def paid(db) -> dict[dt.date, int]:
    frame = db.read_frame("SELECT day, payout_micro_usdc FROM damage_assessments ORDER BY day")
    return {day: int(amount) // USDC for day, amount in zip(frame["day"], frame["payout_micro_usdc"], strict=True)}


def season(db) -> None:
    add_plot(db, "A", sum_insured_usdc=10_000, max_payout_usdc=6_000)
    for day, stress in zip(DAYS, STRESSES, strict=True):
        add_weather(db, "A", day, stress)


@pytest.mark.integration
def test_the_issue_case_a_later_day_first_then_the_earlier_one_pays_once(damage_db):
    add_plot(damage_db, "A", sum_insured_usdc=10_000)
    for day in (JUNE_10, JUNE_11):
        add_weather(damage_db, "A", day, 0.9)  # damage 1.0 each day: entitled to 9,000
    assess(damage_db, JUNE_11)
    assess(damage_db, JUNE_10)
    # as if assessed in order: the earlier day pays, and the later one, still provisional, is re-derived
    assert paid(damage_db) == {JUNE_10: 9_000, JUNE_11: 0}
    later = damage_db.read_frame("SELECT inputs FROM damage_assessments WHERE day = :d", {"d": JUNE_11})["inputs"][0]
    assert later["season_paid"] == {
        "micro_usdc": 9_000 * USDC,
        "assessments": [
            {
                "assessment_id": assessment_id("A", "POL-A", JUNE_10),
                "day": "2025-06-10",
                "payout_micro_usdc": 9_000 * USDC,
            }
        ],
    }


@pytest.mark.integration
def test_a_settled_later_payout_is_never_paid_again_by_an_earlier_day(damage_db):
    add_plot(damage_db, "A", sum_insured_usdc=10_000)
    for day in (JUNE_10, JUNE_11):
        add_weather(damage_db, "A", day, 0.9)
    assess(damage_db, JUNE_11)
    with damage_db.begin() as conn:  # its proof is published: the payout is final
        conn.execute(sa.text("UPDATE damage_assessments SET proof_cid = 'bafyproof' WHERE day = :d"), {"d": JUNE_11})
    assess(damage_db, JUNE_10)
    assert paid(damage_db) == {JUNE_10: 0, JUNE_11: 9_000}


IN_ORDER = dict(zip(DAYS, (3_500, 1_500, 0, 1_000), strict=True))


@pytest.mark.integration
@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::5])
def test_every_order_of_days_pays_what_days_in_order_pay(damage_db, order):
    season(damage_db)
    for index in order:
        assess(damage_db, DAYS[index])
        assert sum(paid(damage_db).values()) <= 6_000
    assert paid(damage_db) == IN_ORDER  # the largest entitlement once, split as days in order split it


@pytest.mark.integration
def test_reruns_in_any_order_keep_the_season_total(damage_db):
    season(damage_db)
    for day in DAYS:
        assess(damage_db, day)
    assert paid(damage_db) == IN_ORDER
    for day in (DAYS[1], DAYS[0], DAYS[3], DAYS[2], DAYS[0]):
        assess(damage_db, day)
        assert paid(damage_db) == IN_ORDER


@pytest.mark.integration
def test_a_rerun_with_new_imagery_rederives_the_later_days(damage_db):
    """A late NDVI capture changes an earlier day: its rerun pays the new amount and the later provisional
    days are re-derived, so every recorded season_paid still matches the table (their proofs verify)."""
    season(damage_db)
    for day in DAYS:
        assess(damage_db, day)
    add_weather(damage_db, "A", DAYS[0], 0.5)  # damage 0.75: entitled to 6,000 (the maximum payout)
    assess(damage_db, DAYS[0])
    assert paid(damage_db) == dict(zip(DAYS, (6_000, 0, 0, 0), strict=True))
    frame = damage_db.read_frame("SELECT assessment_id, day, payout_micro_usdc, inputs FROM damage_assessments")
    payouts = dict(zip(frame["assessment_id"], frame["payout_micro_usdc"], strict=True))
    for inputs in frame["inputs"]:
        assert all(payouts[a["assessment_id"]] == a["payout_micro_usdc"] for a in inputs["season_paid"]["assessments"])
        assert inputs["season_paid"]["micro_usdc"] == sum(
            a["payout_micro_usdc"] for a in inputs["season_paid"]["assessments"]
        )


@pytest.mark.integration
def test_a_new_policy_id_for_the_plot_does_not_reset_what_the_season_paid(damage_db):
    add_plot(damage_db, "A", sum_insured_usdc=10_000, policy_id="POL-1")
    for day in (JUNE_10, JUNE_11):
        add_weather(damage_db, "A", day, 0.9)
    assess(damage_db, JUNE_10)
    with damage_db.begin() as conn:  # past the import's refusal: written straight into the table
        conn.execute(sa.text("UPDATE plots SET policy_id = 'POL-2' WHERE plot_id = 'A'"))
    assess(damage_db, JUNE_11)
    frame = damage_db.read_frame("SELECT policy_id, payout_micro_usdc FROM damage_assessments ORDER BY day")
    assert list(frame["policy_id"]) == ["POL-1", "POL-2"] and list(frame["payout_micro_usdc"] // USDC) == [9_000, 0]


@pytest.mark.integration
def test_plots_import_refuses_a_policy_id_change_in_an_assessed_season(damage_db):
    plot = feature(plot_id="A", policy_id="POL-1", sowing_date="2025-04-01", sum_insured_usdc="10000")
    store_plots(damage_db, parse_plots(collection(plot), "v1"), "v1")
    add_weather(damage_db, "A", JUNE_10, 0.9)
    assess(damage_db, JUNE_10)

    renamed = feature(plot_id="A", policy_id="POL-2", sowing_date="2025-04-01", sum_insured_usdc="10000")
    with pytest.raises(PlotsFileError) as refused:
        store_plots(damage_db, parse_plots(collection(renamed), "v2"), "v2")
    assert "plot_id 'A'" in str(refused.value) and "policy_id='POL-2'" in str(refused.value)
    assert "changes policy_id 'POL-1' while its season 2025-04-01..2025-09-30 already has assessments" in str(
        refused.value
    )
    resown = feature(plot_id="A", policy_id="POL-1", sowing_date="2025-04-20", sum_insured_usdc="10000")
    with pytest.raises(PlotsFileError, match="changes sowing_date 2025-04-01"):
        store_plots(damage_db, parse_plots(collection(resown), "v3"), "v3")
    assert damage_db.read_frame("SELECT policy_id, sowing_date FROM plots")["policy_id"].tolist() == ["POL-1"]

    # the next season is a new policy
    next_season = feature(
        plot_id="A", policy_id="POL-2", sowing_date="2025-10-01", season_end="2026-02-28", sum_insured_usdc="10000"
    )
    assert store_plots(damage_db, parse_plots(collection(next_season), "v4"), "v4").updated == 1


@pytest.mark.integration
def test_two_days_of_one_plot_in_concurrent_runs_pay_once(damage_db):
    add_plot(damage_db, "A", sum_insured_usdc=10_000)
    for day in (JUNE_10, JUNE_11):
        add_weather(damage_db, "A", day, 0.9)
    inputs = {day: assessment_inputs(damage_db, day) for day in (JUNE_10, JUNE_11)}
    both_read = threading.Barrier(2)
    errors = []

    def run(day):
        try:
            both_read.wait(timeout=30)  # both runs have read their inputs before either writes
            assess_day(damage_db, day, inputs[day])
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(day,)) for day in (JUNE_10, JUNE_11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(paid(damage_db).values()) == 9_000


def insert_paying_row(conn, name: str, policy_id: str, day: dt.date, usdc: int) -> None:
    conn.execute(
        "INSERT INTO damage_assessments (assessment_id, plot_id, policy_id, day, method_version, sources, weights,"
        " confidence, growth_stage, stage_multiplier, damage, severity, triggered, entitlement_micro_usdc,"
        " payout_micro_usdc, damage_bps, assessed_at, inputs, season_start, sum_insured_micro_usdc) VALUES"
        " (%s, 'A', %s, %s, 'test', '{weather}', '{}', 1, 'flowering', 1, 1, 'catastrophic', true, %s, %s, 10000,"
        " now(), '{}', '2025-04-01', 1000000000)",
        (name, policy_id, day, usdc * USDC, usdc * USDC),
    )


def raw_connection(db) -> psycopg.Connection:
    return psycopg.connect(db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))


@pytest.mark.integration
def test_the_table_refuses_to_store_a_season_above_its_sum_insured(damage_db):
    with raw_connection(damage_db) as conn:
        insert_paying_row(conn, "one", "POL-1", JUNE_10, 600)
        conn.commit()
        with pytest.raises(psycopg.errors.CheckViolation) as refused:
            insert_paying_row(conn, "two", "POL-2", JUNE_11, 600)  # another policy id, the same plot-season
        assert "plot A season from 2025-04-01: payouts of 1200000000 micro-USDC would exceed its sum insured" in str(
            refused.value
        )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):  # raised by an UPDATE as well
            conn.execute("UPDATE damage_assessments SET payout_micro_usdc = 1000000001 WHERE assessment_id = 'one'")


@pytest.mark.integration
def test_two_writers_of_one_season_queue_and_the_second_is_refused(damage_db):
    """The trigger takes its lock before it sums: the second writer waits for the first to commit, then
    counts its row (without the lock each would see only its own 600 and both would commit)."""
    first, second = raw_connection(damage_db), raw_connection(damage_db)
    outcome = []

    def write_second():
        try:
            insert_paying_row(second, "two", "POL-1", JUNE_11, 600)
            second.commit()
            outcome.append("committed")
        except psycopg.errors.CheckViolation:
            second.rollback()
            outcome.append("refused")

    with first, second:
        insert_paying_row(first, "one", "POL-1", JUNE_10, 600)  # holds the plot's lock until it commits
        thread = threading.Thread(target=write_second)
        thread.start()
        pid = second.info.backend_pid
        with raw_connection(damage_db) as watcher:  # wait (bounded) until the second writer waits on the lock
            for _ in range(200):
                waiting = watcher.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
                if (waiting and waiting[0]) or outcome:
                    break
                threading.Event().wait(0.05)
        first.commit()
        thread.join()
    assert outcome == ["refused"]
    total = damage_db.read_frame("SELECT sum(payout_micro_usdc) AS s FROM damage_assessments")["s"][0]
    assert total == 600 * USDC


@pytest.mark.unit
def test_a_proof_records_what_its_season_had_paid_and_recompute_checks_it():
    inputs = inputs_document("P1", "0.5")
    counted = {"assessment_id": assessment_id("P1", "POL-P1", JUNE_10), "day": "2025-06-10", "payout_micro_usdc": 4}
    inputs["season_paid"] = {"micro_usdc": 4, "assessments": [counted]}
    document, _ = build_proof(inputs, assess_one(inputs), chain_document())
    assert recompute(document) == []
    assert document["outputs"]["payout_micro_usdc"] == document["outputs"]["entitlement_micro_usdc"] - 4

    tampered = json.loads(json.dumps(document))
    tampered["inputs"]["season_paid"]["micro_usdc"] = 0  # a forged total that would pay 4 micro-USDC more
    differences = [str(d) for d in recompute(tampered)]
    assert len(differences) == 1
    assert "plot 'P1': season_paid.micro_usdc=0 is not the sum 4 of the assessments it counts" in differences[0]
    itself = json.loads(json.dumps(document))
    itself["inputs"]["season_paid"]["assessments"][0]["assessment_id"] = document["assessment_id"]
    assert "not another paying assessment of the season" in str(recompute(itself))
