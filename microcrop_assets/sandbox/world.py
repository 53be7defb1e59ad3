"""The sandbox's synthetic world: insured plots, weather stations and daily weather.

Daily weather is generated in blocks of a year from the world start, each block from its own seeded
generator plus the state (wet or dry, temperature anomalies) the previous block ended in, and cached:
any day is served without regenerating the past. A regional series (Markov wet/dry persistence with
Kenyan long and short rains, gamma rain amounts, AR(1) temperature anomalies) is spread over the region
by a daily rain gradient, an elevation lapse rate and per-station noise. Scenario events then change
the days and places they cover, after every random draw, so that places outside an event are untouched.
"""

import datetime as dt
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
from shapely.geometry import Point, Polygon, shape

from microcrop_assets.sandbox.config import SandboxConfig
from microcrop_assets.sandbox.seeding import rng, uuid_for
from microcrop_assets.science.policy import CROP_CALENDARS

BLOCK_DAYS = 365
REGION_MARGIN_DEG = 0.3
CLUSTER_LINK_KM = 30.0
EARTH_RADIUS_KM = 6371.0088

# Western Kenya climatology: rain (mm/month) and the share of wet days; long rains Mar-May, short Oct-Dec.
MONTHLY_RAIN_MM = np.array([65, 80, 140, 230, 200, 120, 105, 135, 125, 140, 120, 80], dtype=float)
MONTHLY_WET_SHARE = np.array([0.30, 0.35, 0.50, 0.70, 0.65, 0.50, 0.45, 0.55, 0.50, 0.55, 0.50, 0.35])
WET_PERSISTENCE = 0.4  # P(wet | wet) - P(wet | dry)
RAIN_GAMMA_SHAPE = 0.75
REFERENCE_ELEVATION_M = 1500.0
LAPSE_C_PER_M = 0.0065

# Winam Gulf of Lake Victoria (crude outline): no station stands in the water.
_LAKE = Polygon(
    [
        (34.15, -0.05),
        (34.40, -0.08),
        (34.62, -0.06),
        (34.76, -0.09),
        (34.80, -0.15),
        (34.72, -0.22),
        (34.55, -0.33),
        (34.45, -0.40),
        (34.25, -0.35),
        (34.15, -0.25),
    ]
)

_WORDS_A = (
    "Amber",
    "Brisk",
    "Calm",
    "Dusky",
    "Eager",
    "Fair",
    "Gentle",
    "Hazy",
    "Ivory",
    "Jolly",
    "Keen",
    "Lucky",
    "Misty",
    "Noble",
    "Olive",
    "Proud",
    "Quiet",
    "Rapid",
    "Sunny",
    "Tidy",
)
_WORDS_B = (
    "Azure",
    "Bronze",
    "Coral",
    "Denim",
    "Emerald",
    "Fuchsia",
    "Golden",
    "Hazel",
    "Indigo",
    "Jade",
    "Khaki",
    "Lilac",
    "Maroon",
    "Navy",
    "Ochre",
    "Plum",
    "Ruby",
    "Scarlet",
    "Teal",
    "Umber",
)
_WORDS_C = (
    "Breeze",
    "Cloud",
    "Drizzle",
    "Frost",
    "Gale",
    "Hail",
    "Mist",
    "Rain",
    "Sky",
    "Storm",
    "Thunder",
    "Wind",
    "Dew",
    "Sleet",
    "Haze",
    "Gust",
    "Shower",
    "Tide",
    "Dawn",
    "Dusk",
)


@dataclass(frozen=True)
class Plot:
    plot_id: str
    crop: str
    sowing_date: dt.date
    geometry: object  # shapely polygon, lon/lat
    lon: float
    lat: float


@dataclass(frozen=True)
class Station:
    index: int
    id: str
    name: str
    lat: float
    lon: float
    elevation: float
    cell_id: str
    created_at: dt.datetime
    utc_offset_hours: int  # the offset its timestamps are written in; days are UTC days regardless
    quality: float  # usual QoD
    flaky: bool  # poor QoD (< 0.8) on about a third of its days
    long_gaps: bool  # hours-long gaps most days, coverage < 0.8
    missing_share: float  # readings lost at random
    offline: tuple[tuple[dt.date, dt.date], ...]  # periods without data: history answers 404
    location_score: float
    location_reason: str | None
    counter_start_mm: float

    @property
    def data_start(self) -> dt.date:
        return self.created_at.date()

    def is_offline(self, day: dt.date) -> bool:
        return any(start <= day <= end for start, end in self.offline)


def distance_km(lat1, lon1, lat2, lon2):
    """Great-circle distance (haversine), vectorised."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.subtract(lon2, lon1)) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def elevation_m(lat, lon):
    """Terrain of western Kenya, roughly: Kisumu lowlands ~1135 m rising north to Kakamega and east to Kericho."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    relief = 1135 + 1100 * np.maximum(lat + 0.1, 0) + 2000 * np.maximum(lon - 35.0, 0)
    relief += 40 * np.sin(lat * 40) * np.cos(lon * 35)
    return np.clip(relief, 0, 3000)


def load_plots(path: Path) -> tuple[Plot, ...]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"sandbox plots file {str(path)!r} is not readable GeoJSON: {error}") from None
    features = document.get("features") if isinstance(document, dict) else None
    if not features:
        raise ValueError(f"sandbox plots file {str(path)!r} has no features")
    plots = []
    for index, feature in enumerate(features):
        properties = feature.get("properties") or {}
        try:
            geometry = shape(feature["geometry"])
            sowing = dt.date.fromisoformat(properties["sowing_date"])
            plot_id = str(properties["plot_id"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"sandbox plots file {str(path)!r}, feature {index}: {error!r}") from None
        crop = properties.get("crop") if properties.get("crop") in CROP_CALENDARS else "maize"
        centre = geometry.centroid
        plots.append(Plot(plot_id, crop, sowing, geometry, centre.x, centre.y))
    return tuple(plots)


def _monthly_to_daily(values: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Interpolate a 12-month climatology to days of year, periodic, through mid-month points."""
    fraction = np.array([(d.timetuple().tm_yday - 0.5) / (366 if _leap(d.year) else 365) for d in days])
    position = fraction * 12 - 0.5
    low = np.floor(position).astype(int)
    weight = position - low
    return values[low % 12] * (1 - weight) + values[(low + 1) % 12] * weight


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


class World:
    """Plots, stations and cached daily weather for one seed and scenario."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.seed = config.seed
        self.start = config.world_start
        self.plots = load_plots(config.plots_file)
        self.plot_by_id = {plot.plot_id: plot for plot in self.plots}
        lons = [c for plot in self.plots for c in plot.geometry.bounds[0::2]]
        lats = [c for plot in self.plots for c in plot.geometry.bounds[1::2]]
        self.region = (
            min(lons) - REGION_MARGIN_DEG,
            min(lats) - REGION_MARGIN_DEG,
            max(lons) + REGION_MARGIN_DEG,
            max(lats) + REGION_MARGIN_DEG,
        )
        self.stations = self._place_stations()
        self.station_by_id = {station.id: station for station in self.stations}
        self._st_lon = np.array([s.lon for s in self.stations])
        self._st_lat = np.array([s.lat for s in self.stations])
        self._st_elev = np.array([s.elevation for s in self.stations])
        self._lock = threading.Lock()
        self._days = 0
        self._state: dict | None = None
        self._regional: dict[str, np.ndarray] = {}
        self._station: dict[str, np.ndarray] = {}

    # ----- stations -----

    def _clusters(self) -> list[tuple[float, float]]:
        """Centres of groups of plots closer than CLUSTER_LINK_KM to one another (single linkage)."""
        groups: list[list[Plot]] = []
        for plot in self.plots:
            touching = [
                g for g in groups if any(distance_km(plot.lat, plot.lon, p.lat, p.lon) < CLUSTER_LINK_KM for p in g)
            ]
            groups = [g for g in groups if all(g is not t for t in touching)]
            groups.append([plot] + [p for g in touching for p in g])
        groups.sort(key=lambda g: min(p.plot_id for p in g))
        return [(float(np.mean([p.lon for p in g])), float(np.mean([p.lat for p in g]))) for g in groups]

    def _place_stations(self) -> tuple[Station, ...]:
        gen = rng(self.seed, "stations")
        count = self.config.station_count
        clusters = self._clusters()
        # a few stations 2-20 km from each cluster of plots, the rest anywhere in the region
        near_each = min(5, max(1, count // (2 * len(clusters))))
        positions: list[tuple[float, float]] = []
        for lon, lat in clusters:
            placed = 0
            while placed < near_each:
                bearing, reach = gen.uniform(0, 2 * math.pi), gen.uniform(2, 20) / 111.32
                candidate = (lon + reach * math.cos(bearing), lat + reach * math.sin(bearing))
                if not _LAKE.contains(Point(candidate)):
                    positions.append(candidate)
                    placed += 1
        min_lon, min_lat, max_lon, max_lat = self.region
        while len(positions) < count:
            candidate = (gen.uniform(min_lon, max_lon), gen.uniform(min_lat, max_lat))
            if not _LAKE.contains(Point(candidate)):
                positions.append(candidate)

        # special behaviours go to distinct stations, drawn from a permutation
        order = [int(i) for i in gen.permutation(count)]
        flaky, long_gaps, offline_one = set(order[0:4]), set(order[4:6]), order[6]
        late_joiners, unverified, unknown = set(order[7:9]), set(order[9:11]), order[11]
        stations = []
        for index, (lon, lat) in enumerate(positions):
            lon, lat = round(lon, 6), round(lat, 6)
            joined_after = int(gen.integers(200, 600)) if index in late_joiners else int(gen.integers(0, 20))
            joined_at = dt.time(int(gen.integers(6, 18)), int(gen.integers(0, 60)))
            created = dt.datetime.combine(self.start + dt.timedelta(days=joined_after), joined_at, tzinfo=dt.UTC)
            offline = ()
            if index == offline_one:
                # an outage of 8-24 days in every half year
                offline = tuple(
                    (self.start + dt.timedelta(days=first), self.start + dt.timedelta(days=first + length - 1))
                    for first, length in (
                        (180 * k + int(gen.integers(30, 150)), int(gen.integers(8, 25))) for k in range(12)
                    )
                )
            location = (0.4, "LOCATION_NOT_VERIFIED") if index in unverified else (1.0, None)
            if index == unknown:
                location = (0.0, "LOCATION_UNKNOWN")
            name = " ".join(str(gen.choice(words)) for words in (_WORDS_A, _WORDS_B, _WORDS_C))
            stations.append(
                Station(
                    index=index,
                    id=uuid_for(self.seed, "station", index),
                    name=name,
                    lat=lat,
                    lon=lon,
                    elevation=round(float(elevation_m(lat, lon)) + float(gen.normal(0, 25)), 1),
                    cell_id=h3.latlng_to_cell(lat, lon, 7),
                    created_at=created,
                    utc_offset_hours=3 if gen.uniform() < 0.3 else 0,
                    quality=float(gen.uniform(0.9, 1.0)),
                    flaky=index in flaky,
                    long_gaps=index in long_gaps,
                    missing_share=float(gen.uniform(0.002, 0.02)),
                    offline=offline,
                    location_score=location[0],
                    location_reason=location[1],
                    counter_start_mm=round(float(gen.uniform(0, 800)), 2),
                )
            )
        return tuple(stations)

    # ----- daily weather -----

    def day_index(self, day: dt.date) -> int:
        return (day - self.start).days

    def _ensure(self, last_index: int) -> None:
        with self._lock:
            while self._days <= last_index:
                self._generate_block(self._days // BLOCK_DAYS)

    def _generate_block(self, block: int) -> None:
        gen = rng(self.seed, "weather", block)
        first = self.start + dt.timedelta(days=block * BLOCK_DAYS)
        days = [first + dt.timedelta(days=k) for k in range(BLOCK_DAYS)]
        rain_mm = _monthly_to_daily(MONTHLY_RAIN_MM, days) * 12 / 365.25
        wet_share = _monthly_to_daily(MONTHLY_WET_SHARE, days)
        p_dry_to_wet = wet_share * (1 - WET_PERSISTENCE)
        p_wet_to_wet = p_dry_to_wet + WET_PERSISTENCE
        state = self._state or {"wet": False, "tmax": 0.0, "tmin": 0.0, "pressure": 0.0, "wind_dir": 110.0}
        n = BLOCK_DAYS
        draws = gen.uniform(size=n)
        amounts = gen.gamma(RAIN_GAMMA_SHAPE, 1.0, size=n)
        shocks = gen.normal(size=(n, 4))
        wet = np.zeros(n, dtype=bool)
        anomalies = np.zeros((n, 4))
        for k in range(n):
            state["wet"] = bool(draws[k] < (p_wet_to_wet[k] if state["wet"] else p_dry_to_wet[k]))
            wet[k] = state["wet"]
            state["tmax"] = 0.7 * state["tmax"] + 1.0 * shocks[k, 0]
            state["tmin"] = 0.6 * state["tmin"] + 0.7 * shocks[k, 1]
            state["pressure"] = 0.8 * state["pressure"] + 1.0 * shocks[k, 2]
            state["wind_dir"] = (state["wind_dir"] + 25 * shocks[k, 3]) % 360
            anomalies[k] = state["tmax"], state["tmin"], state["pressure"], state["wind_dir"]
        self._state = state
        doy = np.array([d.timetuple().tm_yday for d in days], dtype=float)
        regional = {
            "wet": wet,
            "amount": np.where(wet, amounts * rain_mm / wet_share / RAIN_GAMMA_SHAPE, 0.0),
            "gradient_x": gen.normal(0, 0.35, size=n),
            "gradient_y": gen.normal(0, 0.35, size=n),
            "tmax": 27.0 + 1.2 * np.cos(2 * np.pi * (doy - 45) / 365.25) - 1.2 * wet + anomalies[:, 0],
            "tmin": 14.0 + 0.8 * np.cos(2 * np.pi * (doy - 80) / 365.25) + 0.6 * wet + anomalies[:, 1],
            "dew_depression": np.where(wet, gen.uniform(0.0, 1.0, n), gen.uniform(1.0, 3.5, n))
            + 2.0 * np.isin(np.array([d.month for d in days]), (1, 2)),
            "pressure_anomaly": anomalies[:, 2],
            "wind_dir": anomalies[:, 3],
            "wind_mean": gen.gamma(4.0, 0.7, size=n),
            "cloud": np.where(wet, gen.uniform(0.5, 0.9, n), gen.uniform(0.05, 0.4, n)),
        }

        n_st = len(self.stations)
        occurrence = gen.uniform(size=(n_st, n))
        amount_noise = gen.normal(size=(n_st, n))
        temp_noise = gen.normal(0, 0.4, size=(2, n_st, n))
        station_bias = gen.normal(0, 0.4, size=(n_st, 1))
        exposure = gen.uniform(0.6, 1.4, size=(n_st, 1))
        qod_noise = gen.uniform(size=(3, n_st, n))
        reset_draws = gen.uniform(size=(2, n_st, n))

        local = self._local(self._st_lon, self._st_lat, self._st_elev, regional)
        rain = np.where(
            regional["wet"],
            np.where(occurrence > 0.15, local["rain"] * np.exp(0.35 * amount_noise - 0.06), 0.0),
            np.where(occurrence < 0.06, 2.0 * np.exp(0.8 * amount_noise), 0.0),
        )
        effects = self.config.scenario.effects(self.seed, self._st_lon, self._st_lat, first, n)
        station = {
            "rain": np.maximum(rain * effects.rain_factor, effects.rain_floor),
            "tmax": np.maximum(local["tmax"] + station_bias + temp_noise[0] + effects.tmax_add, effects.tmax_floor),
            "tmin": local["tmin"] + station_bias + temp_noise[1] + effects.tmin_add,
            "dew_depression": regional["dew_depression"][None, :] - effects.dewpoint_add,
            "wind_mean": regional["wind_mean"] * exposure,
            "qod_base": self._qod_base(qod_noise),
            "reset_draw": reset_draws[0],
            "reset_slot": 1 + (reset_draws[1] * 287).astype(int),
        }
        station["tmin"] = np.minimum(station["tmin"], station["tmax"] - 4.0)
        first_block = not self._station
        for key, values in regional.items():
            self._regional[key] = values if first_block else np.concatenate([self._regional[key], values])
        for key, values in station.items():
            self._station[key] = values if first_block else np.concatenate([self._station[key], values], axis=1)
        self._days += n

    def _qod_base(self, noise: np.ndarray) -> np.ndarray:
        quality = np.array([[s.quality] for s in self.stations])
        flaky = np.array([[s.flaky] for s in self.stations])
        usual = np.clip(quality - 0.08 * noise[0], 0.8, 1.0)
        poor = 0.5 + 0.29 * noise[1]
        return np.where(flaky & (noise[2] < 0.35), poor, usual)

    def _local(self, lons, lats, elevations, regional) -> dict[str, np.ndarray]:
        """Expected weather at points (rows) for the days (columns) of a regional series."""
        min_lon, min_lat, max_lon, max_lat = self.region
        x = np.clip((np.asarray(lons) - (min_lon + max_lon) / 2) / ((max_lon - min_lon) / 2), -1.5, 1.5)[:, None]
        y = np.clip((np.asarray(lats) - (min_lat + max_lat) / 2) / ((max_lat - min_lat) / 2), -1.5, 1.5)[:, None]
        lapse = ((REFERENCE_ELEVATION_M - np.asarray(elevations)) * LAPSE_C_PER_M)[:, None]
        return {
            "rain": regional["amount"][None, :] * np.exp(regional["gradient_x"] * x + regional["gradient_y"] * y),
            "tmax": regional["tmax"][None, :] + lapse,
            "tmin": regional["tmin"][None, :] + lapse,
        }

    def station_daily(self, station: Station, day: dt.date) -> dict[str, float]:
        """The day's drivers at a station: rain total, Tmax, Tmin, dew depression, wind, regional state."""
        index = self.day_index(day)
        self._ensure(index)
        # regional values first: the station's own (rain, tmax, ...) replace the regional ones of the same name
        values = {key: float(array[index]) for key, array in self._regional.items()}
        values.update({key: float(array[station.index, index]) for key, array in self._station.items()})
        return values

    def counter_at_day_start(self, station: Station, day: dt.date, reset_share: float, after_reset) -> float:
        """The station's rain counter at 00:00 UTC of `day`: rain since its last reset (or since it joined).

        `after_reset(day)` gives the rain of a reset day that fell after the reset; only the last reset
        before `day` needs it, so a year of history costs one station day of intraday rain."""
        first = self.day_index(station.data_start)
        index = self.day_index(day)
        self._ensure(index)
        # no reset on the day a station joins (see resets_on)
        resets = np.flatnonzero(self._station["reset_draw"][station.index, first + 1 : index] < reset_share)
        rain = self._station["rain"][station.index]
        if len(resets) == 0:
            return station.counter_start_mm + float(rain[first:index].sum())
        last = first + 1 + int(resets[-1])
        return after_reset(self.start + dt.timedelta(days=last)) + float(rain[last + 1 : index].sum())

    def resets_on(self, station: Station, day: dt.date, reset_share: float) -> int | None:
        """The 5-minute slot at which the counter resets on this day, or None."""
        index = self.day_index(day)
        self._ensure(index)
        if day > station.data_start and self._station["reset_draw"][station.index, index] < reset_share:
            return int(self._station["reset_slot"][station.index, index])
        return None

    def qod_base(self, station: Station, day: dt.date) -> float:
        index = self.day_index(day)
        self._ensure(index)
        return float(self._station["qod_base"][station.index, index])

    def station_weather(self, first: dt.date, last: dt.date) -> dict[str, np.ndarray]:
        """Every station's daily rain, Tmax, Tmin and usual QoD over [first, last] (stations x days),
        for climatology: the series the station's observations are drawn from, before gaps and resets."""
        lo, hi = self.day_index(first), self.day_index(last) + 1
        if lo < 0 or hi <= lo:
            raise ValueError(f"station weather {first}..{last} is outside the world (from {self.start})")
        self._ensure(hi - 1)
        return {key: self._station[key][:, lo:hi] for key in ("rain", "tmax", "tmin", "qod_base")}

    def point_weather(self, lon: float, lat: float, first: dt.date, last: dt.date) -> dict[str, np.ndarray]:
        """Expected daily rain and Tmax at a place (a plot) over [first, last], scenario included."""
        lo, hi = max(self.day_index(first), 0), self.day_index(last) + 1
        if hi <= lo:
            return {"rain": np.zeros(0), "tmax": np.zeros(0)}
        self._ensure(hi - 1)
        regional = {key: values[lo:hi] for key, values in self._regional.items()}
        lons, lats = np.array([lon]), np.array([lat])
        day0 = self.start + dt.timedelta(days=lo)
        local = self._local(lons, lats, elevation_m(lats, lons), regional)
        effects = self.config.scenario.effects(self.seed, lons, lats, day0, hi - lo)
        rain = np.maximum(local["rain"] * 0.85 * effects.rain_factor, effects.rain_floor)
        return {"rain": rain[0], "tmax": np.maximum(local["tmax"] + effects.tmax_add, effects.tmax_floor)[0]}


def crop_condition(world: World, lon: float, lat: float, crop: str, sowing: dt.date, day: dt.date) -> float:
    """Canopy condition 0..1 of a plot on a day (see crop_conditions)."""
    return float(crop_conditions(world, lon, lat, crop, sowing, day, day)[0])


def crop_conditions(
    world: World, lon: float, lat: float, crop: str, sowing: dt.date, first: dt.date, last: dt.date
) -> np.ndarray:
    """Canopy condition 0..1 of a plot on each day of [first, last]: a green-up / senescence curve from
    the sowing date and the crop calendar, times a water factor from the trailing 30-day rain and a
    heat factor. The season repeats every year on the sowing date's month and day.

    This is the sandbox's ground truth: imagery renders it, and the season report measures basis risk
    against it. One weather query serves every day of the range."""
    weather = world.point_weather(lon, lat, first - dt.timedelta(days=29), last)
    weather_first = max(first - dt.timedelta(days=29), world.start)
    conditions = []
    for offset in range((last - first).days + 1):
        day = first + dt.timedelta(days=offset)
        green = _green(crop, sowing, day)
        end = (day - weather_first).days + 1
        if end <= 0:
            conditions.append(round(green, 4))
            continue
        rain, tmax = weather["rain"][max(end - 30, 0) : end], weather["tmax"][max(end - 30, 0) : end]
        rain_30d = float(rain.sum())
        water = 0.4 + 0.6 * min(1.0, max(0.0, (rain_30d - 10) / 50))
        heat_days = int((tmax[-14:] > 35).sum())
        heat = max(0.5, 1 - 0.04 * heat_days)
        waterlogged = 0.75 if (rain[-14:] > 150).any() else 1.0
        # bare soil is not stressed: only the green part of the canopy responds to the weather
        conditions.append(round(0.05 + (green - 0.05) * water * heat * waterlogged, 4))
    return np.array(conditions)


def _green(crop: str, sowing: dt.date, day: dt.date) -> float:
    """The unstressed canopy on a day of the season that began on the sowing date's month and day."""
    season_start = sowing.replace(year=day.year)
    if season_start > day:
        season_start = season_start.replace(year=day.year - 1)
    age = (day - season_start).days
    stages = CROP_CALENDARS.get(crop, CROP_CALENDARS["maize"])
    flowering, maturity, senescence = stages["flowering"], stages["maturity"], stages["senescence"]
    if age < flowering:
        return 0.05 + 0.9 / (1 + math.exp(-(age - 0.5 * flowering) / (0.12 * flowering)))
    if age < maturity:
        return 0.95
    if age < senescence:
        return 0.95 - 0.4 * (age - maturity) / (senescence - maturity)
    return max(0.05, 0.55 - 0.5 * (age - senescence) / 25)
