"""Plot-to-station geometry: great-circle distances, vendor query boxes and station assignment."""

import math

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod

from microcrop_assets.science.geo import EARTH_RADIUS_KM, assign_stations, haversine_km, query_bounds

pytestmark = pytest.mark.unit

RADIUS_KM = 50.0
# pyproj's geodesic on a sphere of the haversine's radius: an independent great-circle oracle
SPHERE = Geod(a=EARTH_RADIUS_KM * 1000, b=EARTH_RADIUS_KM * 1000)
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180  # along a meridian, or along the equator


def test_one_degree_of_latitude_is_about_111_km():
    assert haversine_km(0.0, 36.0, 1.0, 36.0) == pytest.approx(111.195, abs=0.001)
    assert haversine_km(-1.3, 36.8, -1.3, 36.8) == 0.0


def test_haversine_matches_a_spherical_geodesic_and_broadcasts():
    rng = np.random.default_rng(7)
    lat1, lat2 = rng.uniform(-60, 60, (2, 50))
    lon1, lon2 = rng.uniform(-180, 180, (2, 50))
    expected = SPHERE.inv(lon1, lat1, lon2, lat2)[2] / 1000
    np.testing.assert_allclose(haversine_km(lat1, lon1, lat2, lon2), expected, rtol=1e-9)
    # one plot against three stations: shape follows numpy broadcasting
    distances = haversine_km(0.0, 36.0, np.array([0.0, 1.0, 2.0]), 36.0)
    np.testing.assert_allclose(distances, [0.0, KM_PER_DEGREE, 2 * KM_PER_DEGREE])
    # Nairobi to Mombasa, about 440 km
    assert haversine_km(-1.2921, 36.8219, -4.0435, 39.6682) == pytest.approx(
        SPHERE.inv(36.8219, -1.2921, 39.6682, -4.0435)[2] / 1000, rel=1e-9
    )


def _circle(lat, lon, radius_km, n_points=72):
    """Points just inside each plot's circle (all plots x n_points azimuths), flattened."""
    lat, lon = np.repeat(lat, n_points), np.repeat(lon, n_points)
    azimuth = np.tile(np.arange(n_points) * 360 / n_points, len(lat) // n_points)
    lon2, lat2, _ = SPHERE.fwd(lon, lat, azimuth, np.full(len(lat), radius_km * (1 - 1e-6) * 1000))
    return lat, lon, lat2, lon2


def test_every_station_within_the_radius_lies_in_some_box():
    # Kenya straddles the equator; one plot far north checks the longitude padding at high latitude
    rng = np.random.default_rng(11)
    lat = np.r_[rng.uniform(-5, 5, 150), 0.0, 60.5]
    lon = np.r_[rng.uniform(33, 42, 150), 36.0, 10.0]
    boxes = query_bounds(lat, lon, RADIUS_KM)
    plot_lat, plot_lon, edge_lat, edge_lon = _circle(lat, lon, RADIUS_KM)
    # the stations assign_stations would accept (haversine <= radius) ...
    assert (haversine_km(plot_lat, plot_lon, edge_lat, edge_lon) <= RADIUS_KM).all()
    covered = np.zeros(len(edge_lat), dtype=bool)
    for box in boxes:
        covered |= box.contains(edge_lat, edge_lon)
    # ... must all have been asked for from the vendor
    outside = np.flatnonzero(~covered)
    first = outside[0] if outside.size else 0
    assert covered.all(), (
        f"{outside.size} points at {RADIUS_KM} km are in no box, e.g. plot ({plot_lat[first]:.5f}, "
        f"{plot_lon[first]:.5f}) point ({edge_lat[first]:.5f}, {edge_lon[first]:.5f})"
    )


def test_plots_of_one_grid_cell_share_one_box():
    lat = np.array([0.1, 0.5, 0.9, 0.2])
    lon = np.array([36.1, 36.9, 36.5, 36.3])
    boxes = query_bounds(lat, lon, RADIUS_KM)
    assert len(boxes) == 1
    (box,) = boxes
    assert box.contains(lat, lon).all()
    # grown by the radius on every side, not more than twice it
    assert 0.4 < 0.1 - box.min_lat < 0.9 and 0.4 < box.max_lat - 0.9 < 0.9
    assert 0.4 < 36.1 - box.min_lon < 0.9 and 0.4 < box.max_lon - 36.9 < 0.9


def test_far_apart_clusters_get_one_box_each():
    nakuru = (np.array([-0.30, -0.28, -0.35]), np.array([36.05, 36.10, 36.07]))
    kitui = (np.array([-1.37, -1.40]), np.array([38.01, 38.05]))
    boxes = query_bounds(np.r_[nakuru[0], kitui[0]], np.r_[nakuru[1], kitui[1]], RADIUS_KM)
    assert len(boxes) == 2
    holds_nakuru = [box.contains(*nakuru).all() for box in boxes]
    holds_kitui = [box.contains(*kitui).all() for box in boxes]
    assert sorted(holds_nakuru) == [False, True] and sorted(holds_kitui) == [False, True]
    assert holds_nakuru != holds_kitui
    assert not any(box.contains(*nakuru).any() and box.contains(*kitui).any() for box in boxes)


def test_no_plots_need_no_boxes():
    assert query_bounds(np.array([]), np.array([]), RADIUS_KM) == []


@pytest.mark.parametrize("radius", [0.0, -5.0])
def test_non_positive_radius_is_refused_with_its_value(radius):
    with pytest.raises(ValueError, match=rf"station radius {radius} km must be positive"):
        query_bounds(np.array([0.5]), np.array([36.5]), radius)


def _plots(*rows):
    return pd.DataFrame(rows, columns=["plot_id", "centroid_lat", "centroid_lon"])


def _stations(*rows):
    return pd.DataFrame(rows, columns=["station_id", "lat", "lon"])


def _north(km):
    """Latitude `km` north of the equator (exact on the haversine's sphere)."""
    return km / KM_PER_DEGREE


def test_nearest_stations_within_the_radius_ranked_from_one():
    # plot on the equator at 36 E; stations due north/south/east at known distances, listed out of order
    stations = _stations(
        ("st-80-east", 0.0, 36.0 + _north(80.0)),
        ("st-30-south", -_north(30.0), 36.0),
        ("st-50.1-north", _north(50.1), 36.0),
        ("st-10-east", 0.0, 36.0 + _north(10.0)),
        ("st-49.9-north", _north(49.9), 36.0),
    )
    plots = _plots(("plot-served", 0.0, 36.0), ("plot-remote", 3.0, 30.0))
    result = assign_stations(plots, stations, RADIUS_KM, max_per_plot=5)
    assert list(result.columns) == ["plot_id", "station_id", "distance_km", "rank"]
    assert result["plot_id"].tolist() == ["plot-served"] * 3  # the remote plot has no row at all
    assert result["station_id"].tolist() == ["st-10-east", "st-30-south", "st-49.9-north"]
    np.testing.assert_allclose(result["distance_km"], [10.0, 30.0, 49.9], rtol=1e-9)
    assert result["rank"].tolist() == [1, 2, 3]

    nearest_two = assign_stations(plots, stations, RADIUS_KM, max_per_plot=2)
    assert nearest_two["station_id"].tolist() == ["st-10-east", "st-30-south"]
    assert nearest_two["rank"].tolist() == [1, 2]


def test_no_plots_or_no_stations_give_an_empty_assignment():
    plots = _plots(("plot-1", 0.0, 36.0))
    stations = _stations(("st-1", 0.0, 36.0))
    for result in (
        assign_stations(plots.iloc[:0], stations, RADIUS_KM, 5),
        assign_stations(plots, stations.iloc[:0], RADIUS_KM, 5),
    ):
        assert result.empty
        assert list(result.columns) == ["plot_id", "station_id", "distance_km", "rank"]


def _brute_force(plots: pd.DataFrame, stations: pd.DataFrame, radius_km: float, max_per_plot: int) -> pd.DataFrame:
    rows = []
    for plot in plots.itertuples():
        distance = haversine_km(plot.centroid_lat, plot.centroid_lon, stations["lat"], stations["lon"])
        near = sorted((d, s) for d, s in zip(distance, stations["station_id"], strict=True) if d <= radius_km)
        rows += [(plot.plot_id, s, d, r) for r, (d, s) in enumerate(near[:max_per_plot], start=1)]
    return pd.DataFrame(rows, columns=["plot_id", "station_id", "distance_km", "rank"])


def test_many_plots_in_blocks_agree_with_a_plain_loop():
    # 1,000 stations: blocks of 2,000 plots, so 5,000 plots take three blocks
    rng = np.random.default_rng(3)
    stations = pd.DataFrame(
        {
            "station_id": [f"st-{i:04d}" for i in range(1000)],
            "lat": rng.uniform(-3, 1, 1000),
            "lon": rng.uniform(35, 39, 1000),
        }
    )
    plots = pd.DataFrame(
        {
            "plot_id": [f"plot-{i:05d}" for i in range(5000)],
            "centroid_lat": rng.uniform(-4, 2, 5000),
            "centroid_lon": rng.uniform(34, 40, 5000),
        }
    )
    result = assign_stations(plots, stations, RADIUS_KM, max_per_plot=5)
    sample = plots.iloc[::25]  # 200 plots spread over all three blocks, some beyond the stations' area
    expected = _brute_force(sample, stations, RADIUS_KM, 5)
    assert 0 < expected["plot_id"].nunique() < len(sample)  # the sample has both served and unserved plots
    from_blocks = result[result["plot_id"].isin(sample["plot_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(from_blocks, expected, check_dtype=False)
    one_block = assign_stations(sample, stations, RADIUS_KM, max_per_plot=5)
    pd.testing.assert_frame_equal(one_block, expected, check_dtype=False)
    assert result["rank"].max() == 5 and (result.groupby("plot_id").size() <= 5).all()
