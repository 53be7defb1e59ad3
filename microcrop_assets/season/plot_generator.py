"""The season demo's insured plots: four regions of western Kenya, generated from a seed.

`python -m microcrop_assets.season.plot_generator` rewrites the shipped file `season_plots.geojson`: a pure
function of the seed and of `season_products.json`, the regional products priced on the sandbox's
climate by `season.calibration` (each policy states its region's layers). Regions lie more than 30 km
apart, so the sandbox places weather stations around each of them (World._clusters); each region is
the target of at most one scenario event (see scenarios/season_2025.json).
"""

import datetime as dt
import json
import math

from microcrop_assets.sandbox.seeding import rng, token
from microcrop_assets.season.files import PRODUCTS_FILE, SEASON_PLOTS_FILE

SEED = 2025
PLOTS_PER_REGION = 55
# code, name, centre (lon, lat), spread of the plots around it (km)
REGIONS = (
    ("KE-KAK", "Kakamega", (34.75, 0.28), 9.0),
    ("KE-BUS", "Busia", (34.15, 0.45), 8.0),
    ("KE-KER", "Kericho", (35.28, -0.37), 8.0),
    ("KE-KIS", "Ahero (Kisumu)", (34.92, -0.17), 7.0),
)
CROPS = (("maize", 0.6), ("sorghum", 0.25), ("beans", 0.15))
SOWING_FIRST = dt.date(2025, 3, 10)
SOWING_SPREAD_DAYS = 25
SEASON_END = dt.date(2025, 9, 30)
KM_PER_DEG = 111.32


def region_of(plot_id: str) -> str:
    """The region code of a season plot id (KE-KAK-007 -> KE-KAK)."""
    return plot_id.rsplit("-", 1)[0]


def generate(seed: int = SEED, per_region: int = PLOTS_PER_REGION, products: dict | None = None) -> dict:
    """The season plots; with `products` (season_products.json's "regions"), each policy states its
    region's priced layers."""
    features = []
    number = 0
    for code, _name, (lon0, lat0), spread_km in REGIONS:
        gen = rng(seed, "season-plots", code)
        for index in range(1, per_region + 1):
            number += 1
            reach = spread_km * math.sqrt(gen.uniform()) / KM_PER_DEG
            bearing = gen.uniform(0, 2 * math.pi)
            lon, lat = lon0 + reach * math.cos(bearing), lat0 + reach * math.sin(bearing)
            hectares = float(gen.uniform(0.4, 2.0))
            width = math.sqrt(hectares * 10_000 * gen.uniform(0.6, 1.6)) / (KM_PER_DEG * 1000)
            height = hectares * 10_000 / (width * KM_PER_DEG * 1000) / (KM_PER_DEG * 1000)
            west, south = round(lon - width / 2, 6), round(lat - height / 2, 6)
            east, north = round(lon + width / 2, 6), round(lat + height / 2, 6)
            crop = str(gen.choice([c for c, _ in CROPS], p=[p for _, p in CROPS]))
            sum_insured = int(gen.integers(6, 21)) * 50
            sowing = SOWING_FIRST + dt.timedelta(days=int(gen.integers(0, SOWING_SPREAD_DAYS)))
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "plot_id": f"{code}-{index:03d}",
                        "policy_id": f"POL-2025-S{number:04d}",
                        "farmer_address": "0x" + token(seed, "farmer", code, index, length=40),
                        "crop": crop,
                        "sowing_date": sowing.isoformat(),
                        "season_end": SEASON_END.isoformat(),
                        "sum_insured_usdc": str(sum_insured),
                        "max_payout_usdc": str(sum_insured),
                        **({"policy_terms": {"layers": products[code]["layers"]}} if products else {}),
                    },
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}


def subset(document: dict, count: int) -> dict:
    """`count` plots taken round-robin over the regions (every region keeps plots while it can)."""
    by_region: dict[str, list[dict]] = {}
    for feature in document["features"]:
        by_region.setdefault(region_of(feature["properties"]["plot_id"]), []).append(feature)
    chosen: list[dict] = []
    queues = [list(features) for features in by_region.values()]
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return {**document, "features": chosen}


if __name__ == "__main__":
    priced = json.loads(PRODUCTS_FILE.read_text(encoding="utf-8"))["regions"]
    SEASON_PLOTS_FILE.write_text(json.dumps(generate(products=priced), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {SEASON_PLOTS_FILE}")
