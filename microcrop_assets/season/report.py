"""The season report: one self-contained HTML file (inline CSS and SVG, no script, nothing remote).

`render_report(data)` is pure: frames in, HTML text out. Sections: the season per region, basis risk
(payouts against the sandbox's true crop loss), a map of the plots coloured by damage, rainfall and
stress against the triggers and NDVI against its baseline for sample plots, and the payout table
linking each proof (ipfs:// URI, the gateway and the local copy in the object store).
"""

import dataclasses
import datetime as dt
import html
import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
from scipy.stats import spearmanr

MICRO = Decimal(1_000_000)
# damage colour scale (share 0..1): green, yellow, orange, red
DAMAGE_COLOURS = ((0.0, (46, 160, 67)), (0.15, (240, 200, 40)), (0.35, (240, 120, 30)), (0.6, (200, 30, 30)))
RISK_HEADINGS = {
    "true_losses": "true losses",
    "paid_without_loss": "paid without a true loss",
    "loss_unpaid": "true losses unpaid",
    "mean_shortfall": "mean true shortfall",
    "mean_payout_share": "mean payout / sum insured",
    "spearman": "Spearman (payout vs loss)",
}
EVENT_COLOURS = {"drought": "#b7791f", "flood": "#2b6cb0", "heat_wave": "#c53030"}


@dataclasses.dataclass(frozen=True)
class ReportData:
    """Everything the report shows. Frames (one row per ...):

    plots: plot (plot_id, region, crop, lon, lat, sum_insured_micro_usdc, stress_trigger)
    weather: plot and day (plot_id, day, rain_mm, weather_stress, drought_stress, flood_stress, heat_stress)
    ndvi: plot and day with imagery (plot_id, day, ndvi_mean)
    baselines: plot and week (plot_id, week_start, ndvi_mean, ndvi_std)
    assessments: triggered or not (plot_id, day, damage, triggered, payout_micro_usdc, proof_cid, proof_key)
    payouts: ledger rows (assessment's plot_id, day, status, tx_hash)
    truth: plot (plot_id, shortfall, true_loss) ; conditions: plot and day (plot_id, day, condition, normal)
    events: scenario events (kind, name, start, end, bbox)
    """

    title: str
    first: dt.date
    last: dt.date
    plots: pd.DataFrame
    weather: pd.DataFrame
    ndvi: pd.DataFrame
    baselines: pd.DataFrame
    assessments: pd.DataFrame
    payouts: pd.DataFrame
    truth: pd.DataFrame
    conditions: pd.DataFrame
    events: Sequence[dict]
    gateway_url: str | None = None  # where the proofs were pinned (the sandbox's gateway in the demo)
    proof_files: dict[str, str] = dataclasses.field(default_factory=dict)  # CID -> local file URI
    notes: Sequence[str] = ()


def usdc(micro: int | Decimal) -> str:
    """Micro-USDC as USDC with cents (half-up), thousands separated."""
    value = (Decimal(int(micro)) / MICRO).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{value:,}"


def plot_outcomes(data: ReportData) -> pd.DataFrame:
    """Per plot: season payout, its share of the sum insured, the worst damage, whether it was paid,
    and the true shortfall / loss."""
    assessed = data.assessments
    per_plot = (
        assessed.groupby("plot_id")
        .agg(
            payout_micro_usdc=("payout_micro_usdc", lambda s: int(sum(int(v) for v in s))),
            max_damage=("damage", lambda s: max((float(v) for v in s if v is not None and v == v), default=0.0)),
            triggered_days=("triggered", "sum"),
            assessed_days=("day", "count"),
        )
        .reset_index()
        if not assessed.empty
        else pd.DataFrame(columns=["plot_id", "payout_micro_usdc", "max_damage", "triggered_days", "assessed_days"])
    )
    frame = data.plots.merge(per_plot, on="plot_id", how="left").merge(data.truth, on="plot_id", how="left")
    frame["payout_micro_usdc"] = frame["payout_micro_usdc"].fillna(0).astype(int)
    frame["max_damage"] = frame["max_damage"].fillna(0.0).astype(float)
    frame["triggered_days"] = frame["triggered_days"].fillna(0).astype(int)
    frame["assessed_days"] = frame["assessed_days"].fillna(0).astype(int)
    frame["paid"] = frame["payout_micro_usdc"] > 0
    frame["payout_share"] = [
        float(Decimal(int(p)) / Decimal(int(s))) if int(s) else 0.0
        for p, s in zip(frame["payout_micro_usdc"], frame["sum_insured_micro_usdc"], strict=True)
    ]
    frame["true_loss"] = frame["true_loss"].fillna(False).astype(bool)
    return frame


def basis_risk(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per region (and all): plots, true losses, paid, paid without a true loss, true losses left
    unpaid, and how payouts track true loss (Spearman rank correlation of the season's payout share
    with the true shortfall; undefined when either is constant)."""
    rows = []
    groups = [(region, part) for region, part in outcomes.groupby("region")] + [("all regions", outcomes)]
    for region, part in groups:
        shortfall = part["shortfall"].astype(float)
        share = part["payout_share"].astype(float)
        rho = None
        if len(part) > 2 and shortfall.nunique() > 1 and share.nunique() > 1:
            rho = float(spearmanr(share, shortfall).statistic)
        rows.append(
            {
                "region": region,
                "plots": len(part),
                "true_losses": int(part["true_loss"].sum()),
                "paid": int(part["paid"].sum()),
                "paid_without_loss": int((part["paid"] & ~part["true_loss"]).sum()),
                "loss_unpaid": int((~part["paid"] & part["true_loss"]).sum()),
                "mean_shortfall": float(shortfall.mean()) if len(part) else 0.0,
                "mean_payout_share": float(share.mean()) if len(part) else 0.0,
                "spearman": rho,
            }
        )
    return pd.DataFrame(rows)


def region_summary(outcomes: pd.DataFrame, assessments: pd.DataFrame, payouts: pd.DataFrame) -> pd.DataFrame:
    """Per region: plots, plots assessed, plots triggered, total payout, proofs pinned, payouts confirmed."""
    region_of = dict(zip(outcomes["plot_id"], outcomes["region"], strict=True))
    proofs = assessments[assessments["proof_cid"].notna()]
    confirmed = payouts[payouts["status"] == "confirmed"] if not payouts.empty else payouts
    rows = []
    for region, part in outcomes.groupby("region"):
        rows.append(
            {
                "region": region,
                "plots": len(part),
                "assessed": int((part["assessed_days"] > 0).sum()),
                "triggered": int((part["triggered_days"] > 0).sum()),
                "payout_micro_usdc": int(part["payout_micro_usdc"].sum()),
                "proofs": int(proofs["plot_id"].map(region_of).eq(region).sum()),
                "confirmed": int(confirmed["plot_id"].map(region_of).eq(region).sum()) if len(confirmed) else 0,
            }
        )
    return pd.DataFrame(rows)


# -- SVG ------------------------------------------------------------------------------------------


def _colour(share: float) -> str:
    """Damage share to an RGB colour along DAMAGE_COLOURS (linear between stops)."""
    share = min(max(share, 0.0), 1.0)
    for (low, c0), (high, c1) in zip(DAMAGE_COLOURS, DAMAGE_COLOURS[1:], strict=False):
        if share <= high:
            t = (share - low) / (high - low)
            return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(c0, c1, strict=True))
    return "#" + "".join(f"{c:02x}" for c in DAMAGE_COLOURS[-1][1])


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def plot_map(outcomes: pd.DataFrame, events: Sequence[dict], width: int = 760, height: int = 520) -> str:
    """The plots (dots at their centroids, coloured by the season's worst damage) and the scenario areas."""
    lons = outcomes["lon"].astype(float).tolist() + [c for e in events for c in (e["bbox"][0], e["bbox"][2])]
    lats = outcomes["lat"].astype(float).tolist() + [c for e in events for c in (e["bbox"][1], e["bbox"][3])]
    west, east, south, north = min(lons) - 0.05, max(lons) + 0.05, min(lats) - 0.05, max(lats) + 0.05
    scale = min((width - 40) / (east - west), (height - 40) / (north - south))

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return 20 + (lon - west) * scale, 20 + (north - lat) * scale

    parts = [f'<svg class="map" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f7f7f2"/>')
    for event in events:
        x0, y0 = xy(event["bbox"][0], event["bbox"][3])
        x1, y1 = xy(event["bbox"][2], event["bbox"][1])
        colour = EVENT_COLOURS.get(event["kind"], "#555")
        parts.append(
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" fill="{colour}"'
            f' fill-opacity="0.08" stroke="{colour}" stroke-dasharray="6 4"/>'
            f'<text x="{x0 + 4:.1f}" y="{y0 + 14:.1f}" fill="{colour}" font-size="12">'
            f"{_esc(event['kind'].replace('_', ' '))}: {_esc(event.get('name') or '')}"
            f" ({event['start']}..{event['end']})</text>"
        )
    for row in outcomes.itertuples():
        x, y = xy(float(row.lon), float(row.lat))
        title = (
            f"{row.plot_id} ({row.crop}): worst damage {row.max_damage:.0%}, paid {usdc(row.payout_micro_usdc)}"
            f" USDC, true shortfall {float(row.shortfall or 0):.0%}"
        )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{_colour(row.max_damage)}" stroke="#333"'
            f' stroke-width="0.5"><title>{_esc(title)}</title></circle>'
        )
    for region, part in outcomes.groupby("region"):
        x, y = xy(float(part["lon"].astype(float).mean()), float(part["lat"].astype(float).max()))
        parts.append(f'<text x="{x:.1f}" y="{y - 10:.1f}" font-size="13" text-anchor="middle">{_esc(region)}</text>')
    # legend
    for k, share in enumerate((0.0, 0.15, 0.35, 0.6)):
        parts.append(
            f'<circle cx="{width - 150}" cy="{height - 80 + 16 * k}" r="5" fill="{_colour(share)}" stroke="#333"'
            f' stroke-width="0.5"/><text x="{width - 140}" y="{height - 76 + 16 * k}" font-size="11">'
            f"damage {share:.0%}{'+' if k == 3 else ''}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclasses.dataclass(frozen=True)
class Series:
    label: str
    days: Sequence[dt.date]
    values: Sequence[float | None]
    colour: str
    kind: str = "line"  # line | dashed | bars | dots
    band: Sequence[float | None] | None = None  # +- half-width (baseline std)


def chart(
    series: Sequence[Series],
    first: dt.date,
    last: dt.date,
    y_label: str,
    y_max: float | None = None,
    rules: Sequence[tuple[float, str, str]] = (),
    marks: Sequence[tuple[dt.date, str]] = (),
    width: int = 720,
    height: int = 200,
) -> str:
    """A time chart in SVG: series over [first, last], horizontal rules (value, label, colour) such
    as triggers, and vertical marks (day, colour) such as triggered assessments."""
    left, right, top, bottom = 46, 10, 10, 34
    span = max((last - first).days, 1)
    values = [v for s in series for v in s.values if v is not None and not math.isnan(v)]
    values += [r[0] for r in rules]
    top_value = y_max if y_max is not None else (max(values) * 1.1 if values and max(values) > 0 else 1.0)

    def x(day: dt.date) -> float:
        return left + (width - left - right) * (day - first).days / span

    def y(value: float) -> float:
        return top + (height - top - bottom) * (1 - min(max(value, 0.0), top_value) / top_value)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    parts.append(
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="#999"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0):.1f}" stroke="#999"/>'
    )
    for k in range(5):
        value = top_value * k / 4
        parts.append(f'<text x="{left - 4}" y="{y(value) + 4:.1f}" font-size="10" text-anchor="end">{value:.3g}</text>')
    day = first
    while day <= last:
        if day.day == 1 or day == first:
            parts.append(
                f'<line x1="{x(day):.1f}" y1="{y(0):.1f}" x2="{x(day):.1f}" y2="{y(0) + 4:.1f}" stroke="#999"/>'
                f'<text x="{x(day):.1f}" y="{height - bottom + 16}" font-size="10" text-anchor="middle">'
                f"{day:%d %b}</text>"
            )
        day += dt.timedelta(days=1)
    parts.append(
        f'<text x="12" y="{top + (height - top - bottom) / 2:.0f}" font-size="10" text-anchor="middle"'
        f' transform="rotate(-90 12 {top + (height - top - bottom) / 2:.0f})">{_esc(y_label)}</text>'
    )
    for day, colour in marks:
        parts.append(
            f'<line x1="{x(day):.1f}" y1="{top}" x2="{x(day):.1f}" y2="{y(0):.1f}" stroke="{colour}"'
            f' stroke-opacity="0.35" stroke-width="2"/>'
        )
    bar_width = max((width - left - right) / (span + 1) - 1, 1)
    for s in series:
        points = [(d, v) for d, v in zip(s.days, s.values, strict=True) if v is not None and not math.isnan(v)]
        if s.band is not None:
            upper = [
                (x(d), y(v + b))
                for d, v, b in zip(s.days, s.values, s.band, strict=True)
                if v is not None and b is not None
            ]
            lower = [
                (x(d), y(v - b))
                for d, v, b in zip(s.days, s.values, s.band, strict=True)
                if v is not None and b is not None
            ]
            if upper:
                outline = " ".join(f"{px:.1f},{py:.1f}" for px, py in upper + lower[::-1])
                parts.append(f'<polygon points="{outline}" fill="{s.colour}" fill-opacity="0.15" stroke="none"/>')
        if s.kind == "bars":
            for d, v in points:
                parts.append(
                    f'<rect x="{x(d) - bar_width / 2:.1f}" y="{y(v):.1f}" width="{bar_width:.1f}"'
                    f' height="{y(0) - y(v):.1f}" fill="{s.colour}" fill-opacity="0.6"/>'
                )
        elif s.kind == "dots":
            for d, v in points:
                parts.append(f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" fill="{s.colour}"/>')
        elif points:
            path = " ".join(f"{'M' if k == 0 else 'L'}{x(d):.1f},{y(v):.1f}" for k, (d, v) in enumerate(points))
            dash = ' stroke-dasharray="4 3"' if s.kind == "dashed" else ""
            parts.append(f'<path d="{path}" fill="none" stroke="{s.colour}" stroke-width="1.6"{dash}/>')
    for value, label, colour in rules:
        parts.append(
            f'<line x1="{left}" y1="{y(value):.1f}" x2="{width - right}" y2="{y(value):.1f}" stroke="{colour}"'
            f' stroke-dasharray="5 3"/><text x="{width - right - 2}" y="{y(value) - 3:.1f}" font-size="10"'
            f' text-anchor="end" fill="{colour}">{_esc(label)}</text>'
        )
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{s.colour}">&#9632; {_esc(s.label)}</span>' for s in series)
    return f'<div class="legend">{legend}</div>' + "".join(parts)


# -- HTML -----------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin-bottom: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; font-family: ui-monospace, monospace; font-size: 11px; }
.legend { font-size: 12px; margin: 4px 0; } .legend span { margin-right: 14px; }
.note { color: #555; font-size: 13px; } svg { display: block; }
"""


def _table(frame: pd.DataFrame, formats: dict | None = None, text_columns: Sequence[str] = ()) -> str:
    formats = formats or {}
    head = "".join(f"<th>{_esc(column)}</th>" for column in frame.columns)
    rows = []
    for record in frame.to_dict("records"):
        cells = []
        for column, value in record.items():
            shown = formats[column](value) if column in formats else ("" if value is None else _esc(value))
            css = ' class="text"' if column in text_columns else ""
            cells.append(f"<td{css}>{shown}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def sample_plots(outcomes: pd.DataFrame) -> list[str]:
    """One plot per region: the one with the largest true shortfall (the region's story), ties by id."""
    ranked = outcomes.assign(_s=outcomes["shortfall"].astype(float)).sort_values(["region", "_s", "plot_id"])
    return ranked.groupby("region").tail(1)["plot_id"].tolist()


def _plot_section(data: ReportData, plot: pd.Series) -> str:
    plot_id = plot["plot_id"]
    weather = data.weather[data.weather["plot_id"] == plot_id].sort_values("day")
    ndvi = data.ndvi[data.ndvi["plot_id"] == plot_id].sort_values("day")
    baselines = data.baselines[data.baselines["plot_id"] == plot_id].sort_values("week_start")
    assessed = data.assessments[data.assessments["plot_id"] == plot_id]
    triggered_days = [(d, "#c53030") for d in assessed.loc[assessed["triggered"].astype(bool), "day"]]
    conditions = data.conditions[data.conditions["plot_id"] == plot_id].sort_values("day")
    days = list(weather["day"])

    def floats(column: pd.Series) -> list[float | None]:
        return [None if v is None or v != v else float(v) for v in column]

    rain = chart(
        [Series("daily rain (mm, plot IDW)", days, floats(weather["rain_mm"]), "#2b6cb0", "bars")],
        data.first,
        data.last,
        "rain mm",
        marks=triggered_days,
    )
    stress = chart(
        [
            Series("weather stress", days, floats(weather["weather_stress"]), "#222"),
            Series("drought", days, floats(weather["drought_stress"]), "#b7791f", "dashed"),
            Series("flood", days, floats(weather["flood_stress"]), "#2b6cb0", "dashed"),
            Series("heat", days, floats(weather["heat_stress"]), "#c53030", "dashed"),
        ],
        data.first,
        data.last,
        "stress 0..1",
        y_max=1.0,
        rules=[(float(plot["stress_trigger"]), f"stress trigger {float(plot['stress_trigger']):g}", "#805ad5")],
        marks=triggered_days,
    )
    baseline_days = [d + dt.timedelta(days=3) for d in baselines["week_start"]]  # mid-week
    vegetation = chart(
        [
            Series(
                "NDVI baseline (mean +- std of the 60 days before the week)",
                baseline_days,
                floats(baselines["ndvi_mean"]),
                "#38a169",
                "dashed",
                band=floats(baselines["ndvi_std"]),
            ),
            Series("NDVI (plot mean, per capture)", list(ndvi["day"]), floats(ndvi["ndvi_mean"]), "#276749", "dots"),
            Series(
                "true canopy condition (sandbox)", list(conditions["day"]), floats(conditions["condition"]), "#718096"
            ),
            Series(
                "condition without the events",
                list(conditions["day"]),
                floats(conditions["normal"]),
                "#a0aec0",
                "dashed",
            ),
        ],
        data.first,
        data.last,
        "NDVI / condition",
        y_max=1.0,
        marks=triggered_days,
    )
    paid = int(sum(int(v) for v in assessed["payout_micro_usdc"]))
    return (
        f"<h3>{_esc(plot_id)} ({_esc(plot['crop'])}, {_esc(plot['region'])}): "
        f"{int(assessed['triggered'].astype(bool).sum())} triggered day(s), paid {usdc(paid)} USDC, "
        f"true shortfall {float(plot['shortfall'] or 0):.1%}</h3>"
        f'<p class="note">Red bands: days with a triggered assessment.</p>{rain}{stress}{vegetation}'
    )


def _proof_links(cid: str, data: ReportData) -> str:
    links = [f"ipfs://{_esc(cid)}"]
    if data.gateway_url:
        links.append(f'<a href="{_esc(data.gateway_url.rstrip("/"))}/{_esc(cid)}">gateway</a>')
    if cid in data.proof_files:
        links.append(f'<a href="{_esc(data.proof_files[cid])}">local copy</a>')
    return " ".join(links)


def render_report(data: ReportData) -> str:
    outcomes = plot_outcomes(data)
    summary = region_summary(outcomes, data.assessments, data.payouts)
    risk = basis_risk(outcomes)
    total = int(outcomes["payout_micro_usdc"].sum())
    proven = data.assessments[data.assessments["proof_cid"].notna()]
    # the payouts: proven assessments that added to their season (a season pays its worst day once,
    # so a later triggered day that is not worse is proven but adds nothing)
    paid_rows = proven[proven["payout_micro_usdc"].astype(int) > 0].copy()
    status = (
        dict(zip(zip(data.payouts["plot_id"], data.payouts["day"], strict=True), data.payouts["status"], strict=True))
        if not data.payouts.empty
        else {}
    )
    tx = (
        dict(zip(zip(data.payouts["plot_id"], data.payouts["day"], strict=True), data.payouts["tx_hash"], strict=True))
        if not data.payouts.empty
        else {}
    )
    region_of = dict(zip(outcomes["plot_id"], outcomes["region"], strict=True))
    payout_table = pd.DataFrame(
        {
            "plot": paid_rows["plot_id"],
            "region": paid_rows["plot_id"].map(region_of),
            "day": paid_rows["day"].astype(str),
            "damage": paid_rows["damage"],
            "payout (USDC)": paid_rows["payout_micro_usdc"],
            "proof": paid_rows["proof_cid"],
            "payout status": [
                status.get((p, d), "not in ledger") for p, d in zip(paid_rows["plot_id"], paid_rows["day"], strict=True)
            ],
            "transaction": [tx.get((p, d)) or "" for p, d in zip(paid_rows["plot_id"], paid_rows["day"], strict=True)],
        }
    ).sort_values(["day", "plot"])
    events = "".join(
        f"<li>{_esc(e['kind'].replace('_', ' '))} <b>{_esc(e.get('name') or '')}</b> {e['start']}..{e['end']},"
        f" area {', '.join(f'{c:g}' for c in e['bbox'])}</li>"
        for e in data.events
    )
    percent = lambda v: "" if v is None or v != v else f"{float(v):.1%}"  # noqa: E731
    samples = outcomes.set_index("plot_id").loc[sample_plots(outcomes)].reset_index()
    body = [
        f"<h1>{_esc(data.title)}</h1>",
        f'<p class="note">Season {data.first} to {data.last}; {len(outcomes)} plots in {outcomes["region"].nunique()}'
        f" regions; total payout {usdc(total)} USDC; {len(proven)} proofs pinned;"
        f" {int((data.payouts['status'] == 'confirmed').sum()) if not data.payouts.empty else 0} payouts confirmed"
        f" on the test chain.</p><ul>{events}</ul>",
        "".join(f'<p class="note">{_esc(note)}</p>' for note in data.notes),
        "<h2>Season by region</h2>",
        _table(
            summary.rename(columns={"payout_micro_usdc": "payout (USDC)", "confirmed": "payouts confirmed"}),
            {"payout (USDC)": lambda v: usdc(v)},
        ),
        "<h2>Basis risk: payouts against the true crop loss</h2>",
        '<p class="note">The sandbox knows each plot\'s true canopy condition. True shortfall = 1 - (condition'
        " summed over the season) / (the same without the scenario's events); a true loss is a shortfall of 10 %"
        " or more. Paid = any payout in the season. Spearman = rank correlation between the season's payout"
        " (share of the sum insured) and the true shortfall: 1 when payouts rank plots exactly as their losses"
        " do (blank when either is constant).</p>",
        _table(
            risk.rename(columns=RISK_HEADINGS),
            {
                RISK_HEADINGS["mean_shortfall"]: percent,
                RISK_HEADINGS["mean_payout_share"]: percent,
                RISK_HEADINGS["spearman"]: lambda v: "" if v is None or v != v else f"{v:.2f}",
            },
        ),
        "<h2>Map: plots coloured by their worst damage of the season</h2>",
        plot_map(outcomes, data.events),
        "<h2>Sample plots: rainfall and stress against the triggers, NDVI against its baseline</h2>",
        "".join(_plot_section(data, row) for _, row in samples.iterrows()),
        "<h2>Payouts and their proofs</h2>",
        f'<p class="note">{len(paid_rows)} payouts, each with its proof; the other {len(proven) - len(paid_rows)}'
        " proofs are of triggered days that added nothing to a season already paid at least as much.</p>",
        _table(
            payout_table,
            {
                "damage": percent,
                "payout (USDC)": lambda v: usdc(v),
                "proof": lambda cid: _proof_links(cid, data),
            },
            text_columns=("proof", "transaction"),
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(data.title)}</title><style>{STYLE}</style></head><body>" + "".join(body) + "</body></html>\n"
    )
