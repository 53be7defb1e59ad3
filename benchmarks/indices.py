"""One day of weather_indices for 10,000 and 100,000 plots over the 90-day window."""

import datetime as dt
import time

from benchmarks.synthetic import plots_and_stations
from microcrop_assets.science.plot_indices import WINDOW_DAYS, compute_weather_indices


def run(sizes: tuple[int, ...] = (10_000, 100_000)) -> dict:
    day = dt.date(2025, 6, 30)
    days = [day - dt.timedelta(days=i) for i in range(WINDOW_DAYS - 1, -1, -1)]
    figures = {}
    for n in sizes:
        plots, assignments, station_days = plots_and_stations(n, days)
        began = time.perf_counter()
        rows = compute_weather_indices(plots, assignments, station_days, [day])
        seconds = time.perf_counter() - began
        figures[f"{n}_plots_seconds"] = round(seconds, 2)
        figures[f"{n}_plots_complete_share"] = round(float(rows["weather_stress"].notna().mean()), 3)
    return figures
