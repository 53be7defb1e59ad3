"""Weather jobs: intraday readings, the nightly station-day and index run, the station catalogue."""

import dagster as dg

from microcrop_assets.defs.shared import MAX_RUNTIME
from microcrop_assets.defs.weather.assets import weather_daily, weather_indices, weather_readings, weather_stations

WEATHER_TAGS = {"microcrop/queue": "weather"}
# dagster/max_runtime: the original's 600 s per task, per job here. Intraday readings: 600 s, a later
# tick refreshes the same day anyway. Nightly: every station's full day at the shared vendor rate limit
# plus the indices, 3600 s. Stations: one call per occupied 1-degree cell, 900 s.
weather_readings_job = dg.define_asset_job(
    "weather_readings_job",
    selection=[weather_readings],
    tags={**WEATHER_TAGS, MAX_RUNTIME: "600"},
    description="Fetch one UTC day of readings from every assigned WeatherXM station.",
)
weather_nightly_job = dg.define_asset_job(
    "weather_nightly_job",
    selection=[weather_readings, weather_daily, weather_indices],
    tags={**WEATHER_TAGS, MAX_RUNTIME: "3600"},
    description="Complete a finished UTC day: its readings, station days and plot indices.",
)
weather_stations_job = dg.define_asset_job(
    "weather_stations_job",
    selection=[weather_stations],
    tags={**WEATHER_TAGS, MAX_RUNTIME: "900"},
    description="Refresh the station catalogue and plot-to-station assignments.",
)
