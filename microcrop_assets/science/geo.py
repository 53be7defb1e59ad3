"""Plot-to-station geometry: which stations to ask the vendor for, and which serve each plot."""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LAT = EARTH_RADIUS_KM * math.pi / 180  # the same sphere as haversine_km


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km; broadcasts like numpy."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=float)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


@dataclass(frozen=True)
class Bounds:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float

    def contains(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return (lat >= self.min_lat) & (lat <= self.max_lat) & (lon >= self.min_lon) & (lon <= self.max_lon)


def query_bounds(lat: np.ndarray, lon: np.ndarray, radius_km: float, cell_degrees: float = 1.0) -> list[Bounds]:
    """Few bounding boxes that together hold every station within `radius_km` of every plot.

    Plots are grouped by grid cell of `cell_degrees`; each occupied cell gives one box around its
    plots, grown by the radius. One vendor call per occupied cell instead of one per plot.
    """
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    if lat.size == 0:
        return []
    if radius_km <= 0:
        raise ValueError(f"station radius {radius_km} km must be positive")
    cells = pd.DataFrame(
        {"lat": lat, "lon": lon, "cy": np.floor(lat / cell_degrees), "cx": np.floor(lon / cell_degrees)}
    )
    boxes = []
    for _, group in cells.groupby(["cy", "cx"], sort=True):
        pad_lat = radius_km / KM_PER_DEGREE_LAT
        widest = np.cos(np.radians(np.clip(np.abs(group["lat"]).max() + pad_lat, 0, 89.0)))
        pad_lon = radius_km / (KM_PER_DEGREE_LAT * widest)
        boxes.append(
            Bounds(
                min_lat=max(-90.0, group["lat"].min() - pad_lat),
                min_lon=max(-180.0, group["lon"].min() - pad_lon),
                max_lat=min(90.0, group["lat"].max() + pad_lat),
                max_lon=min(180.0, group["lon"].max() + pad_lon),
            )
        )
    return boxes


def assign_stations(plots: pd.DataFrame, stations: pd.DataFrame, radius_km: float, max_per_plot: int) -> pd.DataFrame:
    """Stations within `radius_km` of each plot centroid, nearest first, at most `max_per_plot`.

    `plots`: plot_id, centroid_lat, centroid_lon. `stations`: station_id, lat, lon.
    Returns plot_id, station_id, distance_km, rank (1 = nearest). Plots are processed in blocks so
    memory stays bounded for 100,000 plots x thousands of stations.
    """
    columns = ["plot_id", "station_id", "distance_km", "rank"]
    if plots.empty or stations.empty:
        return pd.DataFrame(columns=columns)
    s_lat, s_lon = stations["lat"].to_numpy(float), stations["lon"].to_numpy(float)
    s_ids = stations["station_id"].to_numpy()
    parts = []
    block = max(1, 2_000_000 // max(1, len(stations)))
    for start in range(0, len(plots), block):
        chunk = plots.iloc[start : start + block]
        distance = haversine_km(
            chunk["centroid_lat"].to_numpy(float)[:, None],
            chunk["centroid_lon"].to_numpy(float)[:, None],
            s_lat[None, :],
            s_lon[None, :],
        )
        distance = np.where(distance <= radius_km, distance, np.inf)
        k = min(max_per_plot, distance.shape[1])
        nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
        chosen = np.take_along_axis(distance, nearest, axis=1)
        row, rank = np.nonzero(np.isfinite(chosen))
        parts.append(
            pd.DataFrame(
                {
                    "plot_id": chunk["plot_id"].to_numpy()[row],
                    "station_id": s_ids[nearest[row, rank]],
                    "distance_km": chosen[row, rank],
                    "rank": rank + 1,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[columns]
