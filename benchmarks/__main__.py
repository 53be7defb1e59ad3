"""`./dev bench [name ...]`: the pipeline's throughput figures on this machine.

- readings_load: weather readings loaded per second through COPY (the pipeline's path) against one
  INSERT per row (the original system's way), on the same synthetic readings.
- weather_indices: one day of `weather_indices` for 10,000 and 100,000 plots over a 90-day window.
- imagery_sensor: satellite_order_sensor ticks over 10,000 open Spexi sandbox orders.
- ndvi: index arithmetic (Gpx/s) against the memory bound, GeoTIFF -> COGs end to end (Mpx/s), peak
  memory on a 10,000 x 10,000 image (see benchmarks/ndvi.py).
- payout_proofs: 2,000 proofs recomputed, built, validated against their schema and CID'd locally.
- damage_assessments: one day of `damage_assessments` for 100,000 plots: the pure function, and the
  asset's path (read inputs with SQL, assess, replace the day's rows), first run and rerun.

Uses DATABASE_URL when set, else a scratch database on the local server (127.0.0.1:5432).
Results are printed and written to benchmarks/results/<name>.json.
"""

import json
import sys
from pathlib import Path

from benchmarks import damage, imagery_sensor, indices, ndvi, proofs, readings

BENCHMARKS = {
    "readings_load": readings.run,
    "weather_indices": indices.run,
    "imagery_sensor": imagery_sensor.run,
    "ndvi": ndvi.run,
    "damage_assessments": damage.run,
    "payout_proofs": proofs.run,
}


def main(names: list[str]) -> int:
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; choose from {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    for name in names or list(BENCHMARKS):
        figures = BENCHMARKS[name]()
        (results / f"{name}.json").write_text(json.dumps(figures, indent=2))
        print(f"{name}: {json.dumps(figures)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
