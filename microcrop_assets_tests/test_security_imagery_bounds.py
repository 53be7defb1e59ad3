"""Hostile imagery (security issue 14, findings 5 and 7): a plot far larger than its image, a header
claiming more pixels or bands than the limits, and nothing partial left after a refusal or failure."""

import json
import tracemalloc
from pathlib import Path

import pytest
import rasterio
import rasterio.features
import rio_stac
from affine import Affine

import microcrop_assets.defs.imagery.rasters as rasters
from microcrop_assets.cli import main
from microcrop_assets.defs.imagery.rasters import ImageryError, process_image
from microcrop_assets_tests.fixtures.imagery import PLOT_PROPERTIES, Scene, field_reflectance

pytestmark = pytest.mark.unit

RESOLUTION = 0.00005  # degrees: 100 x 100 pixels of about 5.5 m
ORIGIN = (34.5, 0.3)  # upper-left corner (longitude, latitude)


def lonlat_scene() -> Scene:
    """100 x 100 pixels on a longitude/latitude grid: a plot's pixels can be counted by hand."""
    return Scene(field_reflectance((100, 100), seed=3), epsg=4326, origin=ORIGIN, resolution=RESOLUTION)


def square(west: float, south: float, east: float, north: float) -> dict:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def plots_file(path: Path, geometry: dict) -> Path:
    feature = {"type": "Feature", "properties": {"plot_id": "KE-1", **PLOT_PROPERTIES}, "geometry": geometry}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


def test_a_plot_far_larger_than_the_image_costs_memory_bounded_by_the_image(tmp_path, monkeypatch):
    """Finding 5: a 0.4 degree plot over a 100 x 100 image. The plot's pixels beyond the image are
    still counted exactly (as nodata), but its mask is never allocated whole (64 MB here, 7.3 GiB
    at the finding's 0.5 m)."""
    scene = lonlat_scene()
    image = scene.write(tmp_path / "small.tif")
    side = 8000  # pixels: the plot's edges on pixel edges, the image in its middle
    west, north = ORIGIN[0] - 3950 * RESOLUTION, ORIGIN[1] + 3950 * RESOLUTION
    plot = square(west, north - side * RESOLUTION, west + side * RESOLUTION, north)
    inside = square(ORIGIN[0] + 10 * RESOLUTION, ORIGIN[1] - 90 * RESOLUTION, ORIGIN[0] + 90 * RESOLUTION, ORIGIN[1])
    process_image(image, [("warm-up", inside)], tmp_path / "warm", item_id="w")  # imports, GDAL caches

    masks = []
    geometry_mask = rasterio.features.geometry_mask

    def recorded(geometries, out_shape, transform, **kwargs):
        masks.append(out_shape)
        return geometry_mask(geometries, out_shape, transform, **kwargs)

    monkeypatch.setattr(rasterio.features, "geometry_mask", recorded)  # rasters imports it on use
    tracemalloc.start()
    try:
        result = process_image(image, [("huge", plot)], tmp_path / "out", item_id="big")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # the whole plot's mask alone would be 64 MB
    stats = result.plots[0]
    image_masked = sum(result.masked.values())
    assert stats.pixels == side * side  # every pixel of the plot, counted without its whole mask
    assert stats.masked["nodata"] == side * side - 100 * 100 + result.masked["nodata"]
    assert stats.valid_fraction == (100 * 100 - image_masked) / (side * side)
    assert masks[0] == (100, 100)  # the plot's arrays: its part of the image only
    assert max(rows * cols for rows, cols in masks) <= max(100 * 100, rasters.MASK_TILE_PIXELS)


def test_an_image_over_the_pixel_or_band_limit_is_refused_naming_it_and_the_limit(tmp_path, monkeypatch):
    """Finding 7, small: the limits set low from the environment; refused before any output exists."""
    image = lonlat_scene().write(tmp_path / "order-9.tif")  # 100 x 100 pixels, 4 bands
    out = tmp_path / "out"
    monkeypatch.setenv("MICROCROP_MAX_IMAGE_PIXELS", "9999")
    with pytest.raises(ImageryError) as caught:
        process_image(image, [], out, item_id="x")
    assert str(caught.value) == (
        f"{image}: its header claims 100 x 100 = 10000 pixels, more than MICROCROP_MAX_IMAGE_PIXELS=9999"
    )
    monkeypatch.setenv("MICROCROP_MAX_IMAGE_PIXELS", "10000")
    monkeypatch.setenv("MICROCROP_MAX_IMAGE_BANDS", "3")
    with pytest.raises(
        ImageryError, match=r"order-9\.tif: its header claims 4 bands, more than MICROCROP_MAX_IMAGE_BANDS=3"
    ):
        process_image(image, [], out, item_id="x")
    assert not out.exists()  # refused before the output folder, let alone a .partial-* one
    monkeypatch.setenv("MICROCROP_MAX_IMAGE_BANDS", "4")  # both at their limit: processed
    assert process_image(image, [], out, item_id="x").width == 100


def sparse_tiff(path: Path, width: int, height: int) -> Path:
    """A valid 4-band GeoTIFF header over `width` x `height` pixels with no pixel data written."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=4,
        dtype="uint16",
        crs="EPSG:32736",
        transform=Affine(0.5, 0, 500_000, 0, -0.5, 9_900_000),
        tiled=True,
        blockxsize=4096,
        blockysize=4096,
        compress="deflate",
        sparse_ok=True,
        BIGTIFF="YES",
    ) as dst:
        for number, band in enumerate(("red", "green", "blue", "nir"), start=1):
            dst.set_band_description(number, band)
        dst.scales, dst.offsets = [0.0001] * 4, [0.0] * 4
        dst.update_tags(CAPTURE_DATE="2025-06-01T09:30:00+00:00")
    return path


def test_a_small_sparse_tiff_claiming_100000_by_100000_pixels_is_refused_at_once(tmp_path, capsys):
    """Finding 7, real size: a few kB whose header claims 10^10 pixels ran until killed and left a
    .partial-* folder; `microcrop ndvi` now refuses it in one line with the default limit."""
    image = sparse_tiff(tmp_path / "sparse.tif", 100_000, 100_000)
    assert image.stat().st_size < 64 * 1024
    plots = plots_file(tmp_path / "plots.geojson", square(34.0, -0.9, 34.001, -0.899))
    out = tmp_path / "out"
    assert main(["ndvi", str(image), "--plots", str(plots), "--out", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"microcrop ndvi: {image}: its header claims 100000 x 100000 = 10000000000 pixels, "
        "more than MICROCROP_MAX_IMAGE_PIXELS=100000000\n"
    )
    assert not out.exists() and list(tmp_path.rglob(".partial-*")) == []


def test_a_failure_while_publishing_leaves_no_output_and_no_partial_folder(tmp_path, monkeypatch):
    """The six outputs appear together or not at all: the STAC Item of the second index fails."""
    image = lonlat_scene().write(tmp_path / "order-3.tif")
    build_item = rio_stac.create_stac_item
    calls = []

    def failing_second(*args, **kwargs):
        calls.append(kwargs["id"])
        if len(calls) == 2:
            raise OSError("disk full")
        return build_item(*args, **kwargs)

    monkeypatch.setattr(rio_stac, "create_stac_item", failing_second)  # rasters imports it on use
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        process_image(image, [], out, item_id="o3")
    assert calls == ["o3-ndvi", "o3-evi"]
    assert list(out.iterdir()) == []  # neither the NDVI COG and Item built first nor a .partial-* folder
