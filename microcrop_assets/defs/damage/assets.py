"""Damage assets: per-plot daily damage assessments and payouts, and their Parquet archive.

Thin on purpose: read inputs with set-based SQL, call `science.damage.assess_inputs`, write rows.
"""

import datetime as dt
import hashlib
import io
import json
import math
from decimal import Decimal

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from pydantic import Field

from microcrop_assets.defs.plots.assets import plots
from microcrop_assets.defs.plots.registry import canonical_json
from microcrop_assets.defs.shared import daily_partitions
from microcrop_assets.defs.weather.assets import partition_days, weather_indices
from microcrop_assets.resources.object_store import ObjectStoreError, ObjectStoreResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.science.damage import (
    DAMAGE_TERMS,
    METHOD_VERSION,
    SHARE_PLACES,
    SeasonEntry,
    assess_inputs,
    assessment_id,
    counted_before,
    rederive_after,
    season_paid_document,
)
from microcrop_assets.science.plot_indices import INDEX_COLUMNS
from microcrop_assets.science.policy import resolve_terms

DAMAGE_TAGS = {"microcrop/queue": "damage"}

# Each query reads one table over an index range; the joins happen in pandas. Joined in SQL, the
# planner picked per-plot nested loops whenever statistics lagged a bulk load (minutes, not seconds).
_PLOTS_SQL = """
SELECT plot_id, policy_id, farmer_address, crop, sowing_date, season_end, sum_insured_micro_usdc,
       max_payout_micro_usdc, jsonb_hash_extended(policy_terms, 0) AS terms_key
FROM plots WHERE active AND sowing_date <= :day AND season_end >= :day
ORDER BY plot_id
"""
# each distinct set of terms once (plots share a handful of policies' terms), keyed by the jsonb hash
_TERMS_SQL = """
SELECT crop, jsonb_hash_extended(policy_terms, 0) AS terms_key, policy_terms::text AS policy_terms
FROM plots WHERE active AND sowing_date <= :day AND season_end >= :day
GROUP BY crop, policy_terms
"""
_WEATHER_SQL = f"""
SELECT plot_id, weather_stress, drought_stress, flood_stress, heat_stress, layers::text AS layers, window_start,
       window_days, missing_days, missing_reason AS weather_missing_reason, {", ".join(INDEX_COLUMNS)}
FROM weather_indices WHERE day = :day
"""
# One assessment transaction at a time reads what plot-seasons have been paid and writes the day's new
# payouts: two days of one plot in concurrent runs would otherwise both pay against the same total.
_SEASON_LEDGER_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('microcrop.damage_assessments.season_paid', 0))"
# a rerun replaces the day's rows, except evidence: a published proof or an archive copy
_REPLACE_DAY_SQL = "DELETE FROM damage_assessments WHERE day = :day AND proof_cid IS NULL AND archived_at IS NULL"
# The season ledger's entries of the plot-seasons in season on the day (any day, any policy id): every
# paying one, and the provisional ones from the day on, whose payouts and season_paid follow from it (none
# when days arrive in order).
_SEASON_ENTRIES_SQL = """
SELECT plot_id, season_start, assessment_id, day, entitlement_micro_usdc, payout_micro_usdc, sum_insured_micro_usdc,
       proof_cid IS NOT NULL OR archived_at IS NOT NULL AS settled, inputs->'season_paid' AS season_paid
FROM damage_assessments
WHERE season_start >= :first AND season_start <= :day
  AND (payout_micro_usdc > 0 OR (day >= :day AND proof_cid IS NULL AND archived_at IS NULL))
"""
_REDERIVED_SQL = """
UPDATE damage_assessments d SET payout_micro_usdc = r.payout,
       inputs = jsonb_set(d.inputs, '{season_paid}', CAST(r.season_paid AS jsonb))
FROM (SELECT unnest(CAST(:ids AS text[])) AS assessment_id, unnest(CAST(:payouts AS bigint[])) AS payout,
             unnest(CAST(:season_paid AS text[])) AS season_paid) r
WHERE d.assessment_id = r.assessment_id AND d.proof_cid IS NULL AND d.archived_at IS NULL
"""
_NDVI_SQL = """
SELECT plot_id, day AS ndvi_day, ndvi_mean, ndvi_median, ndvi_p10, ndvi_p90, evi_mean, lai_mean, valid_fraction,
       n_images, sources::text AS sources
FROM daily_ndvi WHERE day >= :first AND day <= :day AND ndvi_mean IS NOT NULL
"""
# baselines of the 13 weeks before the oldest NDVI day that may count (older ones are stale)
BASELINE_LOOKBACK_DAYS = 91
_BASELINE_SQL = """
SELECT plot_id, week_start, window_start AS baseline_window_start, window_end AS baseline_window_end,
       ndvi_mean AS baseline_mean, ndvi_std AS baseline_std, ndvi_min AS baseline_min, ndvi_max AS baseline_max,
       n_obs AS baseline_n_obs, content_hash AS baseline_content_hash
FROM ndvi_baselines WHERE week_start >= :first AND week_start <= :day AND ndvi_mean IS NOT NULL
"""


def _latest_imagery(timescaledb: TimescaleDBResource, day: dt.date, season: pd.DataFrame) -> pd.DataFrame:
    """Per plot: the latest valid daily NDVI within the policy's age limit, and the newest baseline whose
    window ends before that NDVI's day (the assessed period is never part of its own baseline)."""
    oldest = day - dt.timedelta(days=int(season["max_age_days"].max()) if len(season) else 0)
    ndvi = timescaledb.read_frame(_NDVI_SQL, {"first": oldest, "day": day})
    ndvi = ndvi.merge(season[["plot_id", "sowing_date", "max_age_days", "min_valid_fraction"]], on="plot_id")
    age = ndvi["ndvi_day"].map(lambda d: (day - d).days) if len(ndvi) else pd.Series(dtype=int)
    valid = (
        (age <= ndvi["max_age_days"])
        & (ndvi["ndvi_day"] >= ndvi["sowing_date"])
        & (ndvi["valid_fraction"] >= ndvi["min_valid_fraction"])
    )
    latest = ndvi[valid].sort_values(["plot_id", "ndvi_day"]).drop_duplicates("plot_id", keep="last")
    baselines = timescaledb.read_frame(
        _BASELINE_SQL, {"first": oldest - dt.timedelta(days=BASELINE_LOOKBACK_DAYS), "day": day}
    )
    candidates = baselines.merge(latest[["plot_id", "ndvi_day"]], on="plot_id")
    usable = (candidates["week_start"] <= candidates["ndvi_day"]) & (
        candidates["baseline_window_end"] < candidates["ndvi_day"]
    )
    newest = candidates[usable].sort_values(["plot_id", "week_start"]).drop_duplicates("plot_id", keep="last")
    return latest.drop(columns=["sowing_date", "max_age_days", "min_valid_fraction"]).merge(
        newest.drop(columns=["ndvi_day"]), on="plot_id", how="left"
    )


ASSESSMENT_COLUMNS = (
    "assessment_id", "plot_id", "policy_id", "day", "method_version", "weather_damage", "satellite_damage",
    "sources", "weights", "confidence", "growth_stage", "stage_multiplier", "damage", "severity", "triggered",
    "entitlement_micro_usdc", "payout_micro_usdc", "damage_bps", "weather_damage_bps", "satellite_damage_bps",
    "assessed_at", "missing_reason", "inputs", "season_start", "sum_insured_micro_usdc",
)  # fmt: skip


def _number(value):
    """A stored number in JSON-exact form: floats as their shortest repr in positional notation (5.5e-05 is
    written 0.000055, the form the proof schema and PostgreSQL's numeric text use), NaN as null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return int(value) if isinstance(value, int) else str(value)


def _count(value) -> int | None:
    """A stored count (read as float when the column holds NULLs) as an int."""
    return None if value is None or value != value else int(value)


def _iso(value) -> str | None:
    return None if value is None or value is pd.NaT or value != value else value.isoformat()


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts of plain Python values, missing values None (column lists: much faster than to_dict)."""
    columns = {c: frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame.columns}
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def assessment_inputs(timescaledb: TimescaleDBResource, day: dt.date) -> list[dict]:
    """Every in-season active plot's inputs document for `day` (see science.damage.assess_one), all but
    `season_paid`, which `assess_day` reads under the season ledger's lock."""
    season = timescaledb.read_frame(_PLOTS_SQL, {"day": day})
    terms_of: dict[tuple[str, int], tuple[dict, list[str]]] = {}  # (crop, terms hash) -> assessment terms, indices
    distinct = timescaledb.read_frame(_TERMS_SQL, {"day": day})
    if distinct[["crop", "terms_key"]].duplicated().any():  # two different terms, one 64-bit hash: refuse
        raise dg.Failure(description=f"{day}: policy terms hash collision; assessments not computed")
    for row in distinct.itertuples():
        terms = resolve_terms(row.crop, json.loads(row.policy_terms))  # adds terms newer than the plot's import
        used = sorted({layer["index"] for layer in terms["layers"].values()})
        # the terms the assessment reads; the weather chain's own terms (layers) stay in plots.policy_terms
        terms_of[(row.crop, row.terms_key)] = ({k: terms[k] for k in DAMAGE_TERMS}, used)
    plot_terms = [terms_of[key][0] for key in zip(season["crop"], season["terms_key"], strict=True)]
    season["max_age_days"] = [t["satellite"]["max_age_days"] for t in plot_terms]
    season["min_valid_fraction"] = [float(t["satellite"]["min_valid_fraction"]) for t in plot_terms]

    weather = timescaledb.read_frame(_WEATHER_SQL, {"day": day}).assign(has_weather=True)
    season = season.merge(weather, on="plot_id", how="left")
    images = {row["plot_id"]: row for row in _records(_latest_imagery(timescaledb, day, season))}
    documents = []
    for row in _records(season):
        terms, used = terms_of[(row["crop"], row["terms_key"])]
        weather = None
        if row["has_weather"]:
            weather = {
                **{c: _number(row[c]) for c in ("weather_stress", "drought_stress", "flood_stress", "heat_stress")},
                "layers": {k: _number(v) for k, v in json.loads(row["layers"] or "{}").items()},
                "indices": {c: _number(row[c]) for c in used},
                "window_start": _iso(row["window_start"]),
                "window_days": _count(row["window_days"]),
                "missing_days": _count(row["missing_days"]),
                "missing_reason": row["weather_missing_reason"],
            }
        image = images.get(row["plot_id"])
        ndvi_doc = baseline = None
        if image is not None:
            ndvi_doc = {
                "day": _iso(image["ndvi_day"]),
                **{
                    c: _number(image[c])
                    for c in ("ndvi_mean", "ndvi_median", "ndvi_p10", "ndvi_p90", "evi_mean", "lai_mean")
                },
                "valid_fraction": _number(image["valid_fraction"]),
                "n_images": _count(image["n_images"]),
                "sources": json.loads(image["sources"] or "[]"),  # order ids, NDVI raster keys and sha256
            }
            if image["week_start"] is not None:
                baseline = {
                    "week_start": _iso(image["week_start"]),
                    "window_start": _iso(image["baseline_window_start"]),
                    "window_end": _iso(image["baseline_window_end"]),
                    "ndvi_mean": _number(image["baseline_mean"]),
                    "ndvi_std": _number(image["baseline_std"]),
                    "ndvi_min": _number(image["baseline_min"]),
                    "ndvi_max": _number(image["baseline_max"]),
                    "n_obs": _count(image["baseline_n_obs"]),
                    "content_hash": image["baseline_content_hash"],
                }
        documents.append(
            {
                "method_version": METHOD_VERSION,
                "plot_id": row["plot_id"],
                "policy_id": row["policy_id"],
                "beneficiary": row["farmer_address"],
                "day": day.isoformat(),
                "sowing_date": row["sowing_date"].isoformat(),
                "season_end": row["season_end"].isoformat(),
                "sum_insured_micro_usdc": int(row["sum_insured_micro_usdc"]),
                "max_payout_micro_usdc": int(row["max_payout_micro_usdc"]),
                "terms": terms,
                "weather": weather,
                "ndvi": ndvi_doc,
                "baseline": baseline,
            }
        )
    return documents


_TERMS_TOKEN = "\x00terms\x00"


def inputs_json(inputs: list[dict]) -> list[str]:
    """Canonical JSON of each inputs document; a policy's terms, shared by many plots, are encoded once
    and spliced in where a placeholder stood (the result is byte-identical to canonical_json(doc))."""
    encoded: dict[int, str] = {}
    quoted_token = canonical_json(_TERMS_TOKEN)
    out = []
    for doc in inputs:
        terms = doc["terms"]
        if id(terms) not in encoded:
            encoded[id(terms)] = canonical_json(terms)
        out.append(canonical_json({**doc, "terms": _TERMS_TOKEN}).replace(quoted_token, encoded[id(terms)], 1))
    return out


SeasonKey = tuple[str, str]  # plot id, season start (ISO)


def season_ledgers(conn: sa.Connection, day: dt.date, inputs: list[dict]) -> dict[SeasonKey, list[SeasonEntry]]:
    """The season ledger entries (see _SEASON_ENTRIES_SQL) as the stored rows say inside the caller's
    transaction, by plot-season."""
    first = min((dt.date.fromisoformat(doc["sowing_date"]) for doc in inputs), default=day)
    ledgers: dict[SeasonKey, list[SeasonEntry]] = {}
    for row in conn.execute(sa.text(_SEASON_ENTRIES_SQL), {"first": first, "day": day}):
        ledgers.setdefault((row.plot_id, row.season_start.isoformat()), []).append(
            SeasonEntry(
                row.assessment_id,
                row.day,
                row.entitlement_micro_usdc,
                row.sum_insured_micro_usdc,
                row.payout_micro_usdc,
                row.settled,
                row.season_paid,
            )
        )
    return ledgers


def _rederive_later(
    conn: sa.Connection,
    day: dt.date,
    ledgers: dict[SeasonKey, list[SeasonEntry]],
    inputs: list[dict],
    written: list[SeasonEntry | None],
) -> int:
    """Re-derive, in order, the provisional payouts after `day` of the day's plot-seasons now that the
    day's own payouts changed (an earlier day assessed late, a rerun); returns how many rows changed."""
    new = {(doc["plot_id"], doc["sowing_date"]): entry for doc, entry in zip(inputs, written, strict=True) if entry}
    changed = []
    for key in set(ledgers) | set(new):
        entries = [*ledgers.get(key, []), *([new[key]] if key in new else [])]
        if any(e.day > day and not e.settled for e in entries):
            changed.extend(rederive_after(entries, day, ""))  # every id of the day sorts after ""
    if any(entry.day == day for entry in changed):  # the day's own rows were computed with the same rule
        raise RuntimeError(f"{day}: the season ledger re-derived the day's own payouts differently")
    if changed:
        conn.execute(
            sa.text(_REDERIVED_SQL),
            {
                "ids": [e.assessment_id for e in changed],
                "payouts": [e.payout_micro_usdc for e in changed],
                "season_paid": [canonical_json(e.season_paid) for e in changed],
            },
        )
    return len(changed)


def assess_day(timescaledb: TimescaleDBResource, day: dt.date, inputs: list[dict]) -> tuple[pd.DataFrame, int]:
    """Assess `day` and replace its assessments in one transaction, under the season ledger's lock.

    The day's replaceable rows go first; each plot's `season_paid` (see science.damage.counted_before) is
    read from what is left and recorded in its inputs; later provisional payouts of its season are then
    re-derived in order (they are written before the day's rows, so the table's cap holds after every
    statement). Days assessed in any order end with the payouts of days assessed in order, and a
    plot-season never pays more than its largest entitlement. Returns the assessments and the number of
    later rows re-derived."""
    columns = ", ".join(f'"{c}"' for c in ASSESSMENT_COLUMNS)
    with timescaledb.begin() as conn:
        conn.execute(sa.text(_SEASON_LEDGER_LOCK))
        conn.execute(sa.text(_REPLACE_DAY_SQL), {"day": day})
        ledgers = season_ledgers(conn, day, inputs)
        ids = [assessment_id(doc["plot_id"], doc["policy_id"], day) for doc in inputs]
        for doc, own in zip(inputs, ids, strict=True):
            entries = ledgers.get((doc["plot_id"], doc["sowing_date"]), [])
            doc["season_paid"] = season_paid_document(counted_before(entries, day, own))
        rows = assess_inputs(inputs)
        kept = set(conn.scalars(sa.text("SELECT assessment_id FROM damage_assessments WHERE day = :day"), {"day": day}))
        written = [
            None
            if row.assessment_id in kept or row.damage is None
            else SeasonEntry(
                own,
                day,
                row.entitlement_micro_usdc,
                doc["sum_insured_micro_usdc"],
                row.payout_micro_usdc,
                False,
                doc["season_paid"],
            )
            for doc, own, row in zip(inputs, ids, rows.itertuples(), strict=True)
        ]
        rederived = _rederive_later(conn, day, ledgers, inputs, written)
        frame = rows.assign(
            inputs=inputs_json(inputs),
            weights=[canonical_json(w) for w in rows["weights"]],
            season_start=[dt.date.fromisoformat(doc["sowing_date"]) for doc in inputs],
            sum_insured_micro_usdc=[doc["sum_insured_micro_usdc"] for doc in inputs],
        )
        frame = frame[frame["damage"].notna()]
        if not kept:  # the usual case: straight COPY into the table
            timescaledb.copy_frame(conn, "damage_assessments", frame, ASSESSMENT_COLUMNS)
        else:  # skip the ids of kept rows (ids are per plot, policy, day and method)
            staging = timescaledb.stage_in(conn, "damage_assessments", frame, ASSESSMENT_COLUMNS)
            conn.execute(
                sa.text(
                    f'INSERT INTO damage_assessments ({columns}) SELECT {columns} FROM "{staging}"'
                    " ON CONFLICT (assessment_id) DO NOTHING"
                )
            )
    return rows, rederived


def seasons_over_sum_insured(timescaledb: TimescaleDBResource, day: dt.date) -> list[dict]:
    """Plot-seasons in season on `day` whose stored payouts, of any day and policy id, exceed their sum
    insured (the check; the table's trigger already refuses to store such rows)."""
    over = timescaledb.read_frame(
        """
        SELECT d.plot_id, d.season_start, sum(d.payout_micro_usdc) AS paid, min(d.sum_insured_micro_usdc) AS cap
        FROM damage_assessments d JOIN plots p ON p.plot_id = d.plot_id AND p.sowing_date = d.season_start
        WHERE p.sowing_date <= :day AND p.season_end >= :day AND d.payout_micro_usdc > 0
        GROUP BY d.plot_id, d.season_start HAVING sum(d.payout_micro_usdc) > min(d.sum_insured_micro_usdc)
        ORDER BY d.plot_id
        """,
        {"day": day},
    )
    return [
        {
            "plot_id": r.plot_id,
            "season_start": r.season_start.isoformat(),
            "paid_micro_usdc": int(r.paid),
            "sum_insured_micro_usdc": int(r.cap),
        }
        for r in over.itertuples()
    ]


@dg.asset(
    group_name="damage",
    kinds={"postgres"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # imagery assets (another branch) are referenced by key: the graph links them once merged
    deps=[plots, weather_indices, dg.AssetKey("daily_ndvi"), dg.AssetKey("ndvi_baselines")],
    check_specs=[
        dg.AssetCheckSpec(
            "season_payouts_within_sum_insured",
            asset="damage_assessments",
            description="no plot's payouts over its season exceed its sum insured",
        )
    ],
)
def damage_assessments(context: dg.AssetExecutionContext, timescaledb: TimescaleDBResource) -> dg.MaterializeResult:
    """Per in-season active plot and day (`damage_assessments`): weather and satellite damage, payout, inputs."""
    stored = triggered = weather_only = rederived = 0
    paid, unassessed, over = 0, {}, []
    for day in partition_days(context):  # any order pays the same; in order, proofs read naturally
        rows, later = assess_day(timescaledb, day, assessment_inputs(timescaledb, day))
        rederived += later
        assessed = rows[rows["damage"].notna()]
        stored += len(assessed)
        triggered += int(assessed["triggered"].sum())
        weather_only += int(assessed["satellite_damage"].isna().sum())
        paid += int(sum(assessed["payout_micro_usdc"]))
        for _, row in rows[rows["damage"].isna()].iterrows():
            unassessed[f"{day} {row['plot_id']}"] = row["missing_reason"]
        over.extend(seasons_over_sum_insured(timescaledb, day))
        context.log.info(f"{day}: {len(assessed)} plots assessed, {len(rows) - len(assessed)} without any source")
    return dg.MaterializeResult(
        metadata={
            "assessments": stored,
            "triggered": triggered,
            "weather_only": weather_only,
            "payout_micro_usdc": paid,
            # provisional payouts of later days re-derived because an earlier day changed (see assess_day)
            "later_payouts_rederived": rederived,
            "unassessed": len(unassessed),
            "unassessed_reasons": dg.MetadataValue.json(dict(list(unassessed.items())[:50])),
            "method_version": METHOD_VERSION,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="season_payouts_within_sum_insured",
                passed=not over,
                metadata={"plots_over": dg.MetadataValue.json(over[:20])},
            )
        ],
    )


# -- archive -----------------------------------------------------------------------------------------


class ArchiveError(Exception):
    """An archive object could not be verified; its rows stay unarchived."""


class ArchiveConfig(dg.Config):
    older_than_days: int = Field(default=90, ge=1, description="archive assessments completed this long ago")
    as_of: str | None = Field(default=None, description="ISO timestamp standing for now (backfills, tests)")
    max_days: int = Field(default=31, ge=1, description="assessed days archived per run (keeps runs short)")


# the table's numeric columns as Arrow decimals of the same precision and scale
_DECIMALS = {
    **dict.fromkeys(
        ("weather_damage", "satellite_damage", "stage_multiplier", "damage"), pa.decimal128(20, SHARE_PLACES)
    ),
    "confidence": pa.decimal128(5, 4),
}


def archive_table(frame: pd.DataFrame) -> pa.Table:
    """The rows as an Arrow table with exact types: shares decimal, JSON canonical text, money int64."""
    columns = {}
    for name in frame.columns:
        values = frame[name]
        if name in _DECIMALS:
            columns[name] = pa.array(values, type=_DECIMALS[name], from_pandas=True)
        elif name in ("weights", "inputs"):
            columns[name] = pa.array([canonical_json(v) for v in values], type=pa.string())
        else:
            columns[name] = pa.array(values, from_pandas=True)
    return pa.table(columns)


def archive_day(timescaledb: TimescaleDBResource, object_store: ObjectStoreResource, day: dt.date, cutoff: dt.datetime):
    """Archive one assessed day's unarchived rows completed before `cutoff`; returns (key, rows).

    Inside one transaction holding the rows: write the Parquet object, read it back, check its sha256
    against the bytes written, and only then mark the rows archived. A mismatch raises and the
    transaction rolls back: nothing is marked, nothing deleted. The sha256 is the whole content check:
    equal bytes decode to the table written, so decoding them again to compare values could never fail
    (that the file holds the rows' exact values, test_damage_archive shows).
    """
    with timescaledb.begin() as conn:
        result = conn.execute(
            sa.text(
                "SELECT * FROM damage_assessments WHERE day = :day AND archived_at IS NULL AND assessed_at < :cutoff"
                " ORDER BY assessment_id FOR UPDATE"
            ),
            {"day": day, "cutoff": cutoff},
        )
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        if frame.empty:
            return None, 0
        table = archive_table(frame.drop(columns=["archived_at", "archive_key"]))
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        key = f"archive/damage_assessments/day={day.isoformat()}/{sha[:16]}.parquet"
        object_store.put(key, data, content_type="application/vnd.apache.parquet")
        try:
            back = object_store.get_bytes(key)  # verifies the stored object's own sha256 too
        except ObjectStoreError as error:
            raise ArchiveError(f"{key}: read back failed: {error}") from None
        # another object under the key (with its own sha256 recorded) passes the store's check, not this one
        read_back = hashlib.sha256(back).hexdigest()
        if read_back != sha:
            raise ArchiveError(f"{key}: sha256 read back {read_back}, written {sha}")
        marked = conn.execute(
            sa.text(
                "UPDATE damage_assessments SET archived_at = now(), archive_key = :key"
                " WHERE assessment_id = ANY(:ids) AND archived_at IS NULL"
            ),
            {"key": key, "ids": list(frame["assessment_id"])},
        ).rowcount
        if marked != len(frame):
            raise ArchiveError(f"{key}: marked {marked} rows, archived {len(frame)}")
    return key, len(frame)


@dg.asset(group_name="damage", kinds={"postgres", "s3"}, deps=[damage_assessments])
def assessment_archive(
    context: dg.AssetExecutionContext,
    config: ArchiveConfig,
    timescaledb: TimescaleDBResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    """Assessments completed more than `older_than_days` ago, as verified Parquet per day; rows marked, kept."""
    now = dt.datetime.fromisoformat(config.as_of) if config.as_of else dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=config.older_than_days)
    days = timescaledb.read_frame(
        "SELECT DISTINCT day FROM damage_assessments WHERE archived_at IS NULL AND assessed_at < :cutoff"
        " ORDER BY day LIMIT :n",
        {"cutoff": cutoff, "n": config.max_days},
    )["day"].tolist()
    archived, failed = {}, {}
    for day in days:
        try:  # one day failing verification never blocks the others
            key, rows = archive_day(timescaledb, object_store, day, cutoff)
        except ArchiveError as error:
            failed[day.isoformat()] = str(error)
            context.log.error(str(error))
            continue
        if key:
            archived[key] = rows
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} day(s) not archived, their rows stay unarchived: "
            + "; ".join(f"{day}: {reason}" for day, reason in failed.items()),
            metadata={"failed": dg.MetadataValue.json(failed), "archived": dg.MetadataValue.json(archived)},
        )
    return dg.MaterializeResult(
        metadata={
            "cutoff": cutoff.isoformat(),
            "days": len(archived),
            "rows": sum(archived.values()),
            "objects": dg.MetadataValue.json(archived),
        }
    )
