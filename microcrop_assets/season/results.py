"""What a season demo produced: read back from its database, measured against the sandbox's truth,
printed as a terminal summary and written as the HTML report."""

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from microcrop_assets.sandbox.scenario import load_scenario
from microcrop_assets.season.plot_generator import region_of
from microcrop_assets.season.report import ReportData, basis_risk, plot_outcomes, region_summary, render_report, usdc
from microcrop_assets.season.run import SeasonRun
from microcrop_assets.season.truth import true_conditions, true_losses

SHOWN_PROOFS = 20  # proofs listed in the terminal; the report links every one

_QUERIES = {
    "plots": "SELECT plot_id, crop, centroid_lon AS lon, centroid_lat AS lat, sum_insured_micro_usdc,"
    " (policy_terms ->> 'stress_trigger')::float8 AS stress_trigger FROM plots WHERE active ORDER BY plot_id",
    "weather": "SELECT plot_id, day, rain_mm, weather_stress, drought_stress, flood_stress, heat_stress"
    " FROM weather_indices WHERE day BETWEEN :first AND :last ORDER BY plot_id, day",
    "ndvi": "SELECT plot_id, day, ndvi_mean FROM daily_ndvi WHERE day BETWEEN :first AND :last"
    " AND ndvi_mean IS NOT NULL ORDER BY plot_id, day",
    "baselines": "SELECT plot_id, week_start, ndvi_mean, ndvi_std FROM ndvi_baselines"
    " WHERE week_start BETWEEN :first AND :last AND ndvi_mean IS NOT NULL ORDER BY plot_id, week_start",
    "assessments": "SELECT assessment_id, plot_id, day, damage::float8 AS damage, triggered, payout_micro_usdc,"
    " proof_cid, proof_uri, proof_key FROM damage_assessments WHERE day BETWEEN :first AND :last"
    " AND damage IS NOT NULL ORDER BY day, plot_id",
    "payouts": "SELECT assessment_id, plot_id, day, status, tx_hash, payout_micro_usdc FROM payouts"
    " ORDER BY day, plot_id",
}


def read_results(database_url: str, first: dt.date, last: dt.date) -> dict[str, pd.DataFrame]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                name: pd.read_sql_query(sa.text(sql), conn, params={"first": first, "last": last})
                for name, sql in _QUERIES.items()
            }
    finally:
        engine.dispose()


def report_data(run: SeasonRun) -> ReportData:
    season = run.season
    frames = read_results(run.database_url, season.first, season.last)
    frames["plots"]["region"] = frames["plots"]["plot_id"].map(region_of)
    conditions = true_conditions(run.sandbox_config, season.first, season.last)
    events = [
        {
            "kind": event.kind,
            "name": event.name,
            "start": event.start.isoformat(),
            "end": event.end.isoformat(),
            "bbox": [round(v, 4) for v in event.area.bounds],
        }
        for event in load_scenario(season.scenario_path).events
    ]
    proof_files = {}
    if run.object_root is not None:
        proven = frames["assessments"].dropna(subset=["proof_cid", "proof_key"])
        for cid, key in zip(proven["proof_cid"], proven["proof_key"], strict=True):
            if (run.object_root / key).is_file():
                proof_files[cid] = (run.object_root / key).as_uri()
    return ReportData(
        title=f"MicroCrop season report: {season.name}",
        first=season.first,
        last=season.last,
        plots=frames["plots"],
        weather=frames["weather"],
        ndvi=frames["ndvi"],
        baselines=frames["baselines"],
        assessments=frames["assessments"],
        payouts=frames["payouts"],
        truth=true_losses(conditions),
        conditions=conditions,
        events=events,
        gateway_url=run.gateway_url,
        proof_files=proof_files,
        notes=[
            f"{run.runs} Dagster runs in {run.seconds:.0f} s; every run's events are in the Dagster instance"
            f" {run.dagster_home} (DAGSTER_HOME={run.dagster_home} dagster dev -w workspace.yaml)."
            " The gateway links worked while the demo's sandbox was serving; the local copies stay.",
        ],
    )


def write_report(run: SeasonRun, data: ReportData) -> Path:
    reports = run.home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"season-{run.season.name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.html"
    path.write_text(render_report(data), encoding="utf-8")
    return path


def summary_text(data: ReportData) -> str:
    """The terminal summary: per region (with its basis risk against the true crop losses), then
    totals and every proof's CID."""
    outcomes = plot_outcomes(data)
    summary = region_summary(outcomes, data.assessments, data.payouts)
    summary = summary.merge(basis_risk(outcomes), on=["region", "plots"])
    lines = [
        f"{'region':<8} {'plots':>5} {'assessed':>8} {'triggered':>9} {'payout USDC':>13} {'proofs':>6} {'paid':>5}"
        f" {'true losses':>11} {'paid, no loss':>13} {'loss unpaid':>11}"
    ]
    for row in summary.itertuples():
        lines.append(
            f"{row.region:<8} {row.plots:>5} {row.assessed:>8} {row.triggered:>9} {usdc(row.payout_micro_usdc):>13}"
            f" {row.proofs:>6} {row.confirmed:>5} {row.true_losses:>11} {row.paid_without_loss:>13}"
            f" {row.loss_unpaid:>11}"
        )
    proofs = data.assessments[data.assessments["proof_cid"].notna()]
    confirmed = int((data.payouts["status"] == "confirmed").sum()) if not data.payouts.empty else 0
    lines.append(
        f"total payout {usdc(int(summary['payout_micro_usdc'].sum()))} USDC; {len(proofs)} proofs pinned;"
        f" {confirmed} of {len(data.payouts)} payouts confirmed on the test chain"
    )
    for row in proofs.head(SHOWN_PROOFS).itertuples():
        lines.append(f"  proof {row.plot_id} {row.day}: {row.proof_cid} ({row.proof_uri})")
    if len(proofs) > SHOWN_PROOFS:
        lines.append(f"  ... and {len(proofs) - SHOWN_PROOFS} more proofs, each linked in the report")
    return "\n".join(lines)


def season_outputs(run: SeasonRun) -> tuple[ReportData, Path]:
    data = report_data(run)
    return data, write_report(run, data)
