"""The season report on synthetic frames: self-contained HTML, basis-risk figures counted by hand,
the map, the charts and the payout table with its proof links."""

import datetime as dt
import re

import pandas as pd
import pytest

from microcrop_assets.season.report import ReportData, basis_risk, plot_outcomes, render_report, usdc
from microcrop_assets_tests.fixtures.season import html_elements

pytestmark = pytest.mark.unit

FIRST, LAST = dt.date(2025, 6, 1), dt.date(2025, 6, 10)
DAYS = [FIRST + dt.timedelta(days=k) for k in range(10)]
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def synthetic() -> ReportData:
    # region A: a1 true loss and paid, a2 no loss and paid (basis risk: paid without loss),
    # a3 true loss unpaid; region B: b1, b2 no loss and unpaid
    plots = pd.DataFrame(
        {
            "plot_id": ["A-001", "A-002", "A-003", "B-001", "B-002", "C-001"],
            "region": ["A", "A", "A", "B", "B", "C"],
            "crop": ["maize", "beans", "maize", "sorghum", "maize", "maize"],
            "lon": [34.70, 34.72, 34.74, 35.20, 35.22, 34.10],
            "lat": [0.30, 0.31, 0.29, -0.30, -0.32, 0.45],
            "sum_insured_micro_usdc": [500_000_000, 400_000_000, 300_000_000, 600_000_000, 700_000_000, 300_000_000],
            "stress_trigger": [0.5] * 6,
        }
    )
    weather = pd.DataFrame(
        [
            {
                "plot_id": p,
                "day": d,
                "rain_mm": 3.0 * k,
                "weather_stress": 0.1 * k,
                "drought_stress": 0.08 * k,
                "flood_stress": 0.0,
                "heat_stress": None,
            }
            for p in plots["plot_id"]
            for k, d in enumerate(DAYS)
        ]
    )
    assessments = pd.DataFrame(
        {
            "assessment_id": ["x1", "x2", "x3", "x4", "x5"],
            "plot_id": ["A-001", "A-001", "A-002", "B-001", "C-001"],
            "day": [DAYS[6], DAYS[8], DAYS[8], DAYS[8], DAYS[9]],
            "damage": [0.4, 0.5, 0.3, 0.05, 0.2],
            "triggered": [True, True, True, False, True],
            "payout_micro_usdc": [100_000_005, 50_000_000, 20_000_000, 0, 30_000_000],
            "proof_cid": [CID, "bafkreiproof2", "bafkreiproof3", None, "bafkreiproof5"],
            "proof_uri": [f"ipfs://bafydir/{CID}.json", "ipfs://d/2", "ipfs://d/3", None, "ipfs://d/5"],
            "proof_key": ["proofs/x1.json", "proofs/x2.json", "proofs/x3.json", None, "proofs/x5.json"],
        }
    )
    payouts = pd.DataFrame(
        {
            "assessment_id": ["x1", "x2", "x3", "x5"],
            "plot_id": ["A-001", "A-001", "A-002", "C-001"],
            "day": [DAYS[6], DAYS[8], DAYS[8], DAYS[9]],
            "status": ["confirmed", "confirmed", "pending", "confirmed"],
            "tx_hash": ["0xabc", "0xdef", None, "0x555"],
            "payout_micro_usdc": [100_000_005, 50_000_000, 20_000_000, 30_000_000],
        }
    )
    truth = pd.DataFrame(
        {
            "plot_id": ["A-001", "A-002", "A-003", "B-001", "B-002", "C-001"],
            "shortfall": [0.30, 0.02, 0.25, 0.0, 0.0, 0.4],
            "true_loss": [True, False, True, False, False, True],
        }
    )
    conditions = pd.DataFrame(
        [{"plot_id": p, "day": d, "condition": 0.6, "normal": 0.8} for p in plots["plot_id"] for d in DAYS]
    )
    return ReportData(
        title="Synthetic season <test>",
        first=FIRST,
        last=LAST,
        plots=plots,
        weather=weather,
        ndvi=pd.DataFrame({"plot_id": ["A-001", "A-001"], "day": [DAYS[2], DAYS[7]], "ndvi_mean": [0.7, 0.45]}),
        baselines=pd.DataFrame(
            {"plot_id": ["A-001"], "week_start": [dt.date(2025, 6, 1)], "ndvi_mean": [0.72], "ndvi_std": [0.04]}
        ),
        assessments=assessments,
        payouts=payouts,
        truth=truth,
        conditions=conditions,
        events=[
            {
                "kind": "drought",
                "name": "dry",
                "start": "2025-05-01",
                "end": "2025-06-30",
                "bbox": [34.6, 0.2, 34.8, 0.4],
            }
        ],
        gateway_url="http://127.0.0.1:8700/ipfs",
        proof_files={CID: "file:///tmp/objects/proofs/x1.json"},
    )


def test_basis_risk_counts_and_rank_correlation():
    data = synthetic()
    outcomes = plot_outcomes(data)
    paid = dict(zip(outcomes["plot_id"], outcomes["payout_micro_usdc"], strict=True))
    assert paid == {"A-001": 150_000_005, "A-002": 20_000_000, "A-003": 0, "B-001": 0, "B-002": 0, "C-001": 30_000_000}
    risk = basis_risk(outcomes).set_index("region")
    a = risk.loc["A"]
    assert (a["plots"], a["true_losses"], a["paid"], a["paid_without_loss"], a["loss_unpaid"]) == (3, 2, 2, 1, 1)
    # payout shares A: 0.30000001, 0.05, 0 against shortfalls 0.30, 0.02, 0.25: ranks (3, 2, 1) vs (3, 1, 2)
    # Spearman = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 24 = 0.5
    assert a["spearman"] == pytest.approx(0.5)
    b = risk.loc["B"]
    assert (b["true_losses"], b["paid"], b["paid_without_loss"], b["loss_unpaid"]) == (0, 0, 0, 0)
    assert b["spearman"] is None or b["spearman"] != b["spearman"]  # constant: undefined
    c = risk.loc["C"]  # paid for a true loss: no basis risk
    assert (c["true_losses"], c["paid"], c["paid_without_loss"], c["loss_unpaid"]) == (1, 1, 0, 0)
    everyone = risk.loc["all regions"]
    assert (everyone["plots"], everyone["paid"], everyone["paid_without_loss"], everyone["loss_unpaid"]) == (6, 3, 1, 1)


def test_usdc_is_exact_and_rounds_half_up():
    assert usdc(150_000_005) == "150.00"
    assert usdc(150_005_000) == "150.01"  # half a cent rounds up
    assert usdc(1_234_567_890_123) == "1,234,567.89"


def test_report_is_self_contained_html_with_map_charts_and_proof_links():
    text = render_report(synthetic())
    elements = html_elements(text)
    tags = [tag for tag, _ in elements.tags]
    # nothing to fetch: no script at all, no stylesheet link, no image or frame from anywhere
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    for _tag, attrs in elements.tags:
        assert not str(attrs.get("src", "")).startswith(("http:", "https:", "//"))
    assert "@import" not in text and "url(" not in text
    assert "<title>Synthetic season &lt;test&gt;</title>" in text  # escaped
    # the map: one dot per plot, the drought area drawn, a damage colour per plot
    svgs = [attrs for tag, attrs in elements.tags if tag == "svg"]
    assert any(attrs.get("class") == "map" for attrs in svgs)
    circles = re.findall(r'<circle cx="[\d.]+" cy="[\d.]+" r="4.5" fill="(#[0-9a-f]{6})"', text)
    assert len(circles) == 6
    assert circles[0] != circles[3]  # A-001 (worst damage 50 %) and B-001 (5 %) differ
    # sample plots: one per region, three charts each (rain, stress, NDVI)
    assert sum(1 for attrs in svgs if attrs.get("class") == "chart") == 9
    assert "stress trigger 0.5" in text
    # payout table: each proof with its ipfs URI, gateway link and local copy
    links = [attrs["href"] for tag, attrs in elements.tags if tag == "a"]
    assert f"http://127.0.0.1:8700/ipfs/{CID}" in links
    assert "file:///tmp/objects/proofs/x1.json" in links
    assert f"ipfs://{CID}" in text
    body = " ".join(elements.text)
    assert "100.00" in body and "confirmed" in body and "0xabc" in body and "pending" in body
    assert "total payout 200.00 USDC" in body
