"""One station day of 5-minute observations (288 slots, 00:00 to 23:55 UTC), as WeatherXM serves them.

Every station day is generated from its own seeded streams (rain timing, gaps, readings), so any day
can be served alone and a change to one day (a scenario) changes nothing else. The day's rain total
comes from the world; here it is spread over afternoon storms and added to the station's running
counter, which resets now and then. Slot 0 never carries new rain, so a client walking one day's
counter (science.md section 1) recovers the day's total exactly when the day has no gaps.
"""

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from microcrop_assets.sandbox.seeding import rng
from microcrop_assets.sandbox.world import Station, World

SLOTS = 288
SLOT_MINUTES = 5
OUTAGE_SHARE = 0.04  # station days with an outage of 1-5 hours


class NoData(LookupError):
    """The station has no readings for that day (not yet installed, offline, or the future)."""


@dataclass(frozen=True)
class StationDay:
    station: Station
    day: dt.date
    observed: np.ndarray  # bool per slot
    fields: dict[str, np.ndarray]  # per slot, rounded as served
    coverage: float
    qod: float

    def observations(self, until_slot: int = SLOTS - 1) -> list[dict]:
        """The observed readings up to a slot, in time order, keys in WeatherXM's order."""
        slots = np.flatnonzero(self.observed[: until_slot + 1])
        offset = dt.timezone(dt.timedelta(hours=self.station.utc_offset_hours))
        midnight = dt.datetime.combine(self.day, dt.time(), tzinfo=dt.UTC)
        columns = {name: values[slots].tolist() for name, values in self.fields.items()}
        rows = []
        for position, slot in enumerate(slots.tolist()):
            stamp = (midnight + dt.timedelta(minutes=SLOT_MINUTES * slot)).astimezone(offset)
            row = {"timestamp": stamp.isoformat()}
            row.update((name, column[position]) for name, column in columns.items())
            rows.append(row)
        return rows

    def health(self) -> dict:
        return {
            "timestamp": dt.datetime.combine(self.day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC).isoformat(),
            "data_quality": {"score": self.qod},
            "location_quality": location_quality(self.station),
        }


def location_quality(station: Station) -> dict:
    return {"score": station.location_score, "reason": station.location_reason}


def check_has_data(station: Station, day: dt.date, today: dt.date) -> None:
    if day < station.data_start:
        raise NoData(f"station {station.id} has no data for {day}: it joined on {station.data_start}")
    if day > today:
        raise NoData(f"station {station.id} has no data for {day}: that day has not happened yet")
    if station.is_offline(day):
        raise NoData(f"station {station.id} has no data for {day}: the station was offline")


def gap_mask(world: World, station: Station, day: dt.date) -> np.ndarray:
    """Which slots hold a reading: random losses, occasional outages, long gaps at some stations."""
    gen = rng(world.seed, "gaps", station.index, day.toordinal())
    observed = gen.uniform(size=SLOTS) >= station.missing_share
    outage_draw, outage_start, outage_length = gen.uniform(), gen.integers(0, SLOTS), gen.integers(12, 61)
    if outage_draw < OUTAGE_SHARE:
        observed[outage_start : outage_start + outage_length] = False
    long_draw, long_start, long_length = gen.uniform(), gen.integers(0, SLOTS - 72), gen.integers(72, 133)
    if station.long_gaps and long_draw < 0.75:
        observed[long_start : long_start + long_length] = False
    if day == station.data_start:
        joined = station.created_at
        observed[: (joined.hour * 60 + joined.minute) // SLOT_MINUTES] = False
    return observed


def daily_qod(world: World, station: Station, day: dt.date, coverage: float) -> float:
    return round(min(world.qod_base(station, day), 0.3 + 0.7 * coverage), 2)


def station_qod(world: World, station: Station, day: dt.date) -> float | None:
    """A day's QoD without generating its readings; None when the station had no data."""
    if day < station.data_start or station.is_offline(day) or day < world.start:
        return None
    return daily_qod(world, station, day, float(gap_mask(world, station, day).mean()))


def rain_increments(world: World, station: Station, day: dt.date, total: float) -> np.ndarray:
    """Spread a day's rain over one or two storms, mostly in the local afternoon (mm per slot)."""
    gen = rng(world.seed, "rain", station.index, day.toordinal())
    increments = np.zeros(SLOTS)
    storms = 1 if total < 8 or gen.uniform() < 0.6 else 2
    shares = gen.dirichlet(np.ones(storms)) if storms > 1 else np.ones(1)
    for share in shares:
        local_start_hour = gen.uniform(12, 20) if gen.uniform() < 0.8 else gen.uniform(0, 24)
        start = int(((local_start_hour - station.lon / 15) % 24) * 60 / SLOT_MINUTES)
        length = int(np.clip(6 + total / 4 + gen.gamma(2.0, 6.0), 3, 60))
        start = min(max(start, 1), SLOTS - 2)
        end = min(start + length, SLOTS)
        hump = np.sin(np.linspace(0, np.pi, end - start + 2)[1:-1]) * gen.gamma(2.0, 1.0, size=end - start)
        increments[start:end] += total * share * hump / hump.sum()
    return increments


def station_day(world: World, station: Station, day: dt.date, reset_share: float) -> StationDay:
    weather = world.station_daily(station, day)
    observed = gap_mask(world, station, day)
    coverage = float(observed.mean())
    qod = daily_qod(world, station, day, coverage)

    increments = rain_increments(world, station, day, weather["rain"])
    counter = world.counter_at_day_start(
        station, day, reset_share, lambda reset_day: _after_reset(world, station, reset_day, reset_share)
    ) + np.cumsum(increments)
    reset_slot = world.resets_on(station, day, reset_share)
    if reset_slot is not None:
        counter[reset_slot:] = np.cumsum(increments[reset_slot:])
    rate = increments * 60 / SLOT_MINUTES

    gen = rng(world.seed, "readings", station.index, day.toordinal())
    minutes = np.arange(SLOTS) * SLOT_MINUTES
    solar_hours = (minutes / 60 + station.lon / 15) % 24
    # temperature: minimum near 06:00 and maximum near 14:30 local solar time
    rising = (solar_hours >= 6) & (solar_hours < 14.5)
    since_peak = (solar_hours - 14.5) % 24
    shape = np.where(
        rising, 0.5 - 0.5 * np.cos(np.pi * (solar_hours - 6) / 8.5), 0.5 + 0.5 * np.cos(np.pi * since_peak / 15.5)
    )
    wobble = np.cumsum(gen.normal(0, 0.08, SLOTS))
    wobble -= np.linspace(0, wobble[-1], SLOTS)
    raining = np.convolve(np.minimum(rate / 5, 1), np.ones(6) / 6, mode="same")
    temperature = weather["tmin"] + (weather["tmax"] - weather["tmin"]) * shape + wobble - 3 * raining
    if qod < 0.8:  # a poor-quality day also has a few implausible readings
        temperature[gen.integers(0, SLOTS, 4)] += gen.uniform(8, 15, 4)
    dew_point = np.minimum(weather["tmin"] - weather["dew_depression"] + gen.normal(0, 0.3, SLOTS), temperature - 0.2)
    dew_point = np.where(raining > 0.3, np.maximum(dew_point, temperature - 0.6), dew_point)
    humidity = np.clip(100 * _vapour(dew_point) / _vapour(temperature), 5, 100)

    afternoon = np.exp(-(((solar_hours - 15) % 24 - 0) ** 2) / 18) + np.exp(-(((solar_hours - 15) % 24 - 24) ** 2) / 18)
    wind_speed = weather["wind_mean"] * (0.5 + 0.9 * afternoon) * np.exp(gen.normal(0, 0.25, SLOTS))
    wind_gust = wind_speed * gen.uniform(1.2, 1.9, SLOTS) + 0.3
    wind_direction = (weather["wind_dir"] + np.cumsum(gen.normal(0, 4, SLOTS))) % 360

    elevation_pressure = 1013.25 * (1 - 2.25577e-5 * station.elevation) ** 5.25588
    pressure = (
        elevation_pressure
        + weather["pressure_anomaly"]
        + 1.0 * np.cos(4 * np.pi * (solar_hours - 10) / 24)
        + gen.normal(0, 0.1, SLOTS)
    )
    sun = _sun_height(station.lat, day, solar_hours)
    clear_sky = np.where(sun > 0, 1098 * sun * np.exp(-0.057 / np.maximum(sun, 1e-3)), 0.0)
    cloudiness = np.clip(weather["cloud"] * gen.uniform(0.6, 1.4, SLOTS) + 0.5 * raining, 0, 1)
    solar = clear_sky * (1 - 0.75 * cloudiness)

    fields = {
        "temperature": np.round(temperature, 2),
        "feels_like": np.round(_feels_like(temperature, humidity, wind_speed), 2),
        "dew_point": np.round(dew_point, 2),
        "precipitation_rate": np.round(rate, 2),
        "precipitation_accumulated": np.round(counter, 2),
        "humidity": np.round(humidity, 1),
        "wind_speed": np.round(wind_speed, 2),
        "wind_gust": np.round(wind_gust, 2),
        "wind_direction": np.round(wind_direction).astype(int) % 360,
        "uv_index": np.round(solar * 0.011).astype(int),
        "pressure": np.round(np.clip(pressure, 800, 1100), 2),
        "solar_irradiance": np.round(solar, 1),
        "icon": _icons(rate, sun, cloudiness),
    }
    return StationDay(station, day, observed, fields, round(coverage, 4), qod)


def _after_reset(world: World, station: Station, day: dt.date, reset_share: float) -> float:
    total = world.station_daily(station, day)["rain"]
    slot = world.resets_on(station, day, reset_share)
    return float(rain_increments(world, station, day, total)[slot:].sum())


def _vapour(celsius: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure (Magnus), hPa."""
    return 6.1094 * np.exp(17.625 * celsius / (celsius + 243.04))


def _sun_height(lat: float, day: dt.date, solar_hours: np.ndarray) -> np.ndarray:
    """Sine of the sun's elevation."""
    declination = math.radians(23.44) * math.sin(2 * math.pi * (284 + day.timetuple().tm_yday) / 365)
    hour_angle = np.radians((solar_hours - 12) * 15)
    phi = math.radians(lat)
    return math.sin(phi) * math.sin(declination) + math.cos(phi) * math.cos(declination) * np.cos(hour_angle)


def _feels_like(temperature: np.ndarray, humidity: np.ndarray, wind: np.ndarray) -> np.ndarray:
    """Heat index (Rothfusz) when hot and humid, wind chill when cold and windy, else the temperature."""
    f = temperature * 9 / 5 + 32
    rh = humidity
    heat_index_f = (
        -42.379
        + 2.04901523 * f
        + 10.14333127 * rh
        - 0.22475541 * f * rh
        - 6.83783e-3 * f**2
        - 5.481717e-2 * rh**2
        + 1.22874e-3 * f**2 * rh
        + 8.5282e-4 * f * rh**2
        - 1.99e-6 * f**2 * rh**2
    )
    heat_index = (heat_index_f - 32) * 5 / 9
    kmh = np.maximum(wind * 3.6, 0.1)
    chill = 13.12 + 0.6215 * temperature - 11.37 * kmh**0.16 + 0.3965 * temperature * kmh**0.16
    return np.where(
        (temperature >= 27) & (humidity >= 40),
        np.maximum(heat_index, temperature),
        np.where((temperature <= 10) & (wind > 1.34), chill, temperature),
    )


def _icons(rate: np.ndarray, sun: np.ndarray, cloudiness: np.ndarray) -> np.ndarray:
    partly = np.where(sun > 0, "partly-cloudy-day", "partly-cloudy-night")
    clear = np.where(sun > 0, "clear-day", "clear-night")
    icons = np.where(cloudiness > 0.7, "cloudy", np.where(cloudiness > 0.35, partly, clear))
    return np.where(rate > 2, "rain", np.where(rate > 0, "drizzle", icons)).astype(object)
