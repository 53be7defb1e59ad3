"""process_image on GeoTIFFs written here with rasterio: band identification, COGs, STAC, plot statistics."""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import shapely
import spyndex
from pyproj import Transformer
from rasterio.enums import ColorInterp
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import shape
from shapely.ops import transform as reproject

from microcrop_assets.defs.imagery.rasters import ImageryError, process_image
from microcrop_assets.science.vegetation import (
    BANDS,
    REASONS,
    BandCalibration,
    VegetationParams,
    saturation_value,
    vegetation_indices,
)
from microcrop_assets_tests.fixtures.imagery import Scene, field_reflectance

pytestmark = pytest.mark.unit

SHAPE = (1100, 1300)  # > 2 COG blocks each way: overviews and partial edge blocks
SCALES = {"ndvi": 1e-4, "evi": 1e-4, "lai": 1e-3}  # stored int16 x scale = the index
NODATA = -32768
# a stored value is within half a quantum of the float32 value; the float32 value within 1e-6 of float64
NDVI_TOLERANCE = 5e-5 + 1e-6


def reflectance_dn(scene: Scene, value: float) -> int:
    return round((value - scene.offset) / scene.scale)


def float_indices(scene: Scene):
    """The float32 indices process_image holds in memory: the kernel on the scene's whole arrays (block
    by block is bitwise the same, test_science_vegetation), with the scene's calibration."""
    dns = scene.digital_numbers()
    calibration = {band: BandCalibration(*scene.calibration(band), saturation_value(scene.dtype)) for band in BANDS}
    return vegetation_indices(*(dns[band] for band in BANDS), calibration)


def physical(path: Path) -> np.ndarray:
    """A stored index as GDAL readers that unscale see it: integer x scale + offset, NaN for nodata."""
    with rasterio.open(path) as cog:
        stored = cog.read(1, masked=True)
        return stored.astype(np.float64).filled(np.nan) * cog.scales[0] + cog.offsets[0]


@pytest.fixture(scope="module")
def southern_scene(tmp_path_factory):
    """Bands nir, blue, red, green; scale 2e-5, offset -0.05; UTM 36S; forced nodata, saturated, N + R = 0,
    cloud and shadow pixels inside and outside the plots."""
    scene = Scene(
        field_reflectance(SHAPE, seed=5),
        order=("nir", "blue", "red", "green"),
        scale=0.00002,
        offset=-0.05,
        epsg=32736,
        origin=(712_345.0, 9_650_020.0),
        resolution=0.4,
    )
    zero = reflectance_dn(scene, 0.0)
    forced = {"nodata": [], "saturated": [], "zero_sum": [], "cloud": [], "shadow": []}
    gen = np.random.default_rng(1)
    for reason in forced:
        for row, col in zip(gen.integers(0, SHAPE[0], 400), gen.integers(0, SHAPE[1], 400), strict=True):
            forced[reason].append((int(row), int(col)))
    cells = set()
    for reason, pixels in forced.items():
        pixels[:] = [p for p in dict.fromkeys(pixels) if p not in cells]
        cells.update(pixels)
        for row, col in pixels:
            if reason == "nodata":
                scene.raw[("nir", row, col)] = 0
            elif reason == "saturated":
                scene.raw[("red", row, col)] = 65535
            elif reason == "zero_sum":
                scene.raw[("red", row, col)] = zero
                scene.raw[("nir", row, col)] = zero
            elif reason == "cloud":
                scene.raw[("blue", row, col)] = reflectance_dn(scene, 0.35)
            else:
                for band in ("nir", "red", "blue"):
                    scene.raw[(band, row, col)] = reflectance_dn(scene, 0.02)
    path = scene.write(tmp_path_factory.mktemp("scene") / "south.tif")
    plots = [
        ("plot-a", scene.plot(100.3, 150.6, 700.2, 900.7)),
        ("plot-b", scene.plot(1000.3, 20.2, 1299.4, 1099.4)),  # touches the east and south edges
        ("plot-edge", scene.plot(1200.3, 500.2, 1400.6, 600.7)),  # half beyond the east edge
        ("plot-outside", scene.plot(5000.2, 5000.2, 5100.7, 5100.7)),
    ]
    out = tmp_path_factory.mktemp("out")
    # blocks of 256 x 512 px: edges of blocks cut through every plot
    result = process_image(path, plots, out, item_id="south-1", params=VegetationParams(block_rows=256, block_cols=512))
    return scene, path, plots, forced, out, result


def pixels_in(geometry: dict, epsg: int, transform, shape_: tuple[int, int]) -> np.ndarray:
    """Pixel centres inside the plot: shapely + pyproj, independent of rasterio's rasterisation."""
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True).transform
    polygon = reproject(to_utm, shape(geometry))
    rows, cols = np.indices(shape_)
    xs = transform.c + (cols + 0.5) * transform.a
    ys = transform.f + (rows + 0.5) * transform.e
    return shapely.contains_xy(polygon, xs, ys)


def test_outputs_are_valid_cogs_on_the_image_grid(southern_scene):
    _, path, _, _, out, result = southern_scene
    assert sorted(result.rasters) == ["evi", "lai", "ndvi"]
    assert (result.crs, result.width, result.height) == ("EPSG:32736", SHAPE[1], SHAPE[0])
    with rasterio.open(path) as src:
        grid = (src.crs, src.transform, src.shape)
    for index, output in result.rasters.items():
        assert output.path.parent == out and output.path.name == f"south-1_{index}.tif"
        valid, errors, warnings = cog_validate(output.path)
        assert valid and not errors, (errors, warnings)
        with rasterio.open(output.path) as cog:
            assert (cog.crs, cog.transform, cog.shape) == grid
            assert cog.dtypes[0] == "int16" and cog.nodata == NODATA
            assert (cog.scales[0], cog.offsets[0]) == (SCALES[index], 0.0)
            assert cog.block_shapes[0] == (512, 512)
            assert cog.overviews(1) == [2, 4]  # down to one 512 px block
            assert cog.profile["compress"] == "zstd"
            assert cog.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"  # horizontal differencing: integers
            assert cog.tags()["CLIPPED_PIXELS"] == "0"
            assert cog.descriptions[0] == index
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no leftovers of the work folder


def test_stac_items_describe_their_cogs(southern_scene):
    _, _, _, _, _, result = southern_scene
    for index, output in result.rasters.items():
        assert output.stac_path == output.path.with_suffix(".json")
        item = pystac.Item.from_file(str(output.stac_path))
        assert item.id == f"south-1-{index}"
        assert item.datetime == dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.UTC)
        asset = item.assets[index]
        assert Path(asset.get_absolute_href()) == output.path.resolve()
        assert asset.media_type == pystac.MediaType.COG
        raw = json.loads(output.stac_path.read_text())
        assert raw["properties"]["proj:epsg"] == 32736
        assert raw["properties"]["microcrop:clipped_pixels"] == 0
        assert raw["assets"][index]["href"] == f"./{output.path.name}"
        (band,) = raw["assets"][index]["raster:bands"]
        assert (band["data_type"], band["scale"], band["offset"], band["nodata"]) == ("int16", SCALES[index], 0, NODATA)
        lon, lat = shape(item.geometry).centroid.coords[0]
        assert 30 < lon < 36 and -4 < lat < 0  # UTM 36S footprint in lon/lat


def test_indices_equal_spyndex_and_masks_are_exact(southern_scene):
    scene, _, _, forced, _, result = southern_scene
    dns = scene.digital_numbers()
    r, n, b = (dns[band].astype(np.float64) * scene.scale + scene.offset for band in ("red", "nir", "blue"))
    constants = {name: spyndex.constants[name].default for name in ("g", "C1", "C2", "L")}
    ndvi, evi = spyndex.computeIndex(["NDVI", "EVI"], params={"N": n, "R": r, "B": b, **constants})
    expected_masked = np.zeros(SHAPE, bool)
    for pixels in forced.values():
        for row, col in pixels:
            expected_masked[row, col] = True
    got_ndvi, got_evi = physical(result.rasters["ndvi"].path), physical(result.rasters["evi"].path)
    assert np.array_equal(np.isnan(got_ndvi), expected_masked)
    np.testing.assert_allclose(got_ndvi[~expected_masked], ndvi[~expected_masked], rtol=0, atol=NDVI_TOLERANCE)
    np.testing.assert_allclose(got_evi[~expected_masked], evi[~expected_masked], rtol=0, atol=NDVI_TOLERANCE)
    assert result.masked == {reason: len(forced[reason]) for reason in REASONS}


def test_stored_integers_are_the_float_indices_within_half_a_quantum(southern_scene):
    scene, _, _, _, _, result = southern_scene
    indices = float_indices(scene)
    for index, scale in SCALES.items():
        expected = getattr(indices, index).astype(np.float64)
        with rasterio.open(result.rasters[index].path) as cog:
            stored = cog.read(1)
        nan = np.isnan(expected)
        assert nan.sum() > 1000 and np.array_equal(stored == NODATA, nan)  # NaN <-> nodata, both ways
        error = np.abs(stored[~nan] * scale - expected[~nan])
        assert error.max() <= scale / 2 * (1 + 1e-9)  # 5e-5 for NDVI (the 1e-9: 1e-4 is not exact in binary)
        assert error.max() > scale / 4  # rounded to the quantum, not stored finer


def test_plot_statistics_equal_an_independent_polygon_mask(southern_scene):
    scene, _, plots, forced, out, result = southern_scene
    # the float32 arrays, not the stored integers: statistics are computed before quantization
    indices = float_indices(scene)
    arrays = {index: getattr(indices, index).astype(np.float64) for index in ("ndvi", "evi", "lai")}
    by_id = {stats.plot_id: stats for stats in result.plots}
    assert list(by_id) == ["plot-a", "plot-b", "plot-edge", "plot-outside"]
    for plot_id, geometry in plots[:3]:
        beyond = pixels_in(geometry, scene.epsg, scene.transform, (SHAPE[0] + 200, SHAPE[1] + 200))
        inside = beyond[: SHAPE[0], : SHAPE[1]]
        uncovered = int(beyond.sum() - inside.sum())  # the plot's pixels beyond the image count as nodata
        stats = by_id[plot_id]
        values = arrays["ndvi"][inside]
        values = values[~np.isnan(values)]
        assert stats.pixels == int(beyond.sum()) > 10_000
        expected = {reason: sum(bool(inside[row, col]) for row, col in pixels) for reason, pixels in forced.items()}
        expected["nodata"] += uncovered
        assert stats.masked == expected
        assert sum(stats.masked.values()) > 0
        assert stats.valid_fraction == pytest.approx(values.size / beyond.sum(), abs=1e-12)
        assert stats.ndvi_mean == pytest.approx(values.mean(), abs=1e-9)
        assert stats.ndvi_median == pytest.approx(np.median(values), abs=1e-9)
        assert stats.ndvi_p10 == pytest.approx(np.percentile(values, 10), abs=1e-9)
        assert stats.ndvi_p90 == pytest.approx(np.percentile(values, 90), abs=1e-9)
        assert stats.evi_mean == pytest.approx(np.nanmean(arrays["evi"][inside]), abs=1e-9)
        assert stats.lai_mean == pytest.approx(np.nanmean(arrays["lai"][inside]), abs=1e-9)
        assert stats.usable is (plot_id != "plot-edge")
    assert 0.4 < by_id["plot-edge"].valid_fraction < 0.5
    outside = by_id["plot-outside"]
    assert (outside.pixels, outside.valid_fraction, outside.ndvi_mean, outside.usable) == (0, 0.0, None, False)


def test_block_by_block_output_is_bitwise_whole_image(southern_scene, tmp_path):
    _, path, plots, _, _, result = southern_scene
    whole = process_image(
        path, plots, tmp_path, item_id="south-1", params=VegetationParams(block_rows=2048, block_cols=2048)
    )  # one block: the whole array at once
    assert whole.plots == result.plots
    assert whole.masked == result.masked
    for index in ("ndvi", "evi", "lai"):
        with rasterio.open(whole.rasters[index].path) as a, rasterio.open(result.rasters[index].path) as b:
            assert np.array_equal(a.read(1), b.read(1))
        assert whole.rasters[index].sha256 == result.rasters[index].sha256


def small_scene(**kwargs) -> Scene:
    return Scene(field_reflectance((64, 80), seed=2), **kwargs)


# each band its own scale, offset and nodata (band 1 is nir): reading any band with another's is wrong
OWN_CALIBRATION = {  # band -> (scale, offset, nodata)
    "nir": (0.00002, 0.05, 1000),
    "green": (0.0001, 0.0, 3),
    "red": (0.0001, -0.1, 0),
    "blue": (0.00005, -0.02, 2000),
}


def test_each_band_is_read_with_its_own_scale_offset_and_nodata(tmp_path):
    scene = Scene(
        field_reflectance((64, 80), seed=4),
        order=("nir", "green", "red", "blue"),
        band_scales={band: scale for band, (scale, _, _) in OWN_CALIBRATION.items()},
        band_offsets={band: offset for band, (_, offset, _) in OWN_CALIBRATION.items()},
        band_nodata={band: nodata for band, (_, _, nodata) in OWN_CALIBRATION.items()},
    )
    nodata = {band: OWN_CALIBRATION[band][2] for band in ("red", "nir", "blue")}
    own_nodata = {(10, 10): "red", (20, 30): "nir", (40, 50): "blue"}  # nodata in this band only
    others_nodata = {  # a band's valid DN that is another band's nodata value
        (11, 11): ("red", nodata["nir"]),
        (12, 12): ("red", nodata["blue"]),
        (21, 31): ("nir", nodata["red"]),
        (22, 32): ("nir", nodata["blue"]),
        (41, 51): ("blue", nodata["red"]),
        (42, 52): ("blue", nodata["nir"]),
    }
    for (row, col), band in own_nodata.items():
        scene.raw[(band, row, col)] = nodata[band]
    for (row, col), (band, dn) in others_nodata.items():
        scene.raw[(band, row, col)] = dn
    path = scene.write(tmp_path / "calibrated.tif")
    with rasterio.open(path) as src:  # the file really holds a different calibration per band
        assert src.scales == tuple(OWN_CALIBRATION[band][0] for band in scene.order)
        assert src.offsets == tuple(OWN_CALIBRATION[band][1] for band in scene.order)
        assert src.nodatavals == tuple(float(OWN_CALIBRATION[band][2]) for band in scene.order)
    plot = scene.plot(2.2, 3.4, 77.6, 60.7)
    result = process_image(path, [("p", plot)], tmp_path / "out", item_id="own")

    # expected by hand from the raw digital numbers: DN x the band's scale + its offset, its own nodata
    dns = {band: values.astype(np.float64) for band, values in scene.digital_numbers().items()}
    r, n, b = (dns[band] * OWN_CALIBRATION[band][0] + OWN_CALIBRATION[band][1] for band in ("red", "nir", "blue"))
    params = VegetationParams()
    reasons = {
        "nodata": np.any([dns[band] == nodata[band] for band in nodata], axis=0),
        "saturated": np.any([dns[band] == 65535 for band in nodata], axis=0),
        "zero_sum": n + r == 0,
        "cloud": b > params.cloud_blue,
        "shadow": (n < params.shadow_nir) & (r < params.shadow_visible) & (b < params.shadow_visible),
    }
    masked = np.zeros(scene.shape, bool)
    for reason, pixels in reasons.items():  # a pixel counts under the first reason that applies
        reasons[reason] = pixels & ~masked
        masked |= pixels
    assert [bool(reasons["nodata"][pixel]) for pixel in own_nodata] == [True, True, True]
    assert not any(masked[pixel] for pixel in others_nodata)
    assert reasons["nodata"].sum() == len(own_nodata)  # the field's own DNs hit no band's nodata
    assert result.masked == {reason: int(pixels.sum()) for reason, pixels in reasons.items()}

    ndvi = (n - r) / (n + r)
    evi = 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1)
    constants = {name: spyndex.constants[name].default for name in ("g", "C1", "C2", "L")}
    spyndex_ndvi, spyndex_evi = spyndex.computeIndex(["NDVI", "EVI"], params={"N": n, "R": r, "B": b, **constants})
    np.testing.assert_allclose(ndvi, spyndex_ndvi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(evi, spyndex_evi, rtol=0, atol=1e-12)
    for index, expected in (("ndvi", ndvi), ("evi", evi)):
        got = physical(result.rasters[index].path)
        assert np.array_equal(np.isnan(got), masked), index
        np.testing.assert_allclose(got[~masked], expected[~masked], rtol=0, atol=NDVI_TOLERANCE, err_msg=index)

    inside = pixels_in(plot, scene.epsg, scene.transform, scene.shape)
    (stats,) = result.plots
    assert stats.masked == {reason: int((pixels & inside).sum()) for reason, pixels in reasons.items()}
    assert stats.masked["nodata"] == len(own_nodata)  # all three inside the plot
    assert stats.ndvi_mean == pytest.approx(ndvi[inside & ~masked].mean(), abs=1e-6)
    assert stats.evi_mean == pytest.approx(evi[inside & ~masked].mean(), abs=1e-6)


def test_values_beyond_int16_are_clipped_counted_and_kept_in_the_statistics(tmp_path):
    # a negative red reflectance (DN below the offset) with N + R = 0.0001: NDVI 1001, beyond 3.2767
    scene = small_scene()
    scene.raw = {("red", 30, 40): reflectance_dn(scene, -0.05), ("nir", 30, 40): reflectance_dn(scene, 0.0501)}
    plot = scene.plot(35.2, 25.3, 45.6, 35.7)
    result = process_image(scene.write(tmp_path / "odd.tif"), [("p", plot)], tmp_path / "out", item_id="odd")
    assert {index: output.clipped for index, output in result.rasters.items()} == {"ndvi": 1, "evi": 0, "lai": 0}
    ndvi = result.rasters["ndvi"]
    with rasterio.open(ndvi.path) as cog:
        stored = cog.read(1)
        assert cog.tags()["CLIPPED_PIXELS"] == "1"
    assert stored[30, 40] == 32767 and np.count_nonzero(stored == 32767) == 1
    assert json.loads(ndvi.stac_path.read_text())["properties"]["microcrop:clipped_pixels"] == 1
    values = float_indices(scene).ndvi[25:36, 35:46].astype(np.float64)
    assert values.max() == pytest.approx(1001, rel=1e-3)  # the float value, not the clipped 3.2767
    assert result.plots[0].ndvi_mean == pytest.approx(values.mean(), abs=1e-9)


def test_bands_found_by_wavelength_tags_in_micrometres_and_nanometres(tmp_path):
    scene = small_scene(
        order=("blue", "nir", "green", "red"),
        descriptions=False,
        band_tags={
            "blue": {"WAVELENGTH": "0.475"},
            "nir": {"wavelength_nm": "842"},
            "green": {"WAVELENGTH": "560"},
            "red": {"central_wavelength": "668"},
        },
    )
    result = process_image(scene.write(tmp_path / "wl.tif"), [], tmp_path / "out", item_id="wl")
    dns = scene.digital_numbers()
    r, n = (dns[b].astype(np.float64) * scene.scale + scene.offset for b in ("red", "nir"))
    np.testing.assert_allclose(physical(result.rasters["ndvi"].path), (n - r) / (n + r), atol=NDVI_TOLERANCE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order": ("red", "green", "blue", "rededge"), "descriptions": True}, r"cannot identify the nir band"),
        ({"descriptions": False}, r"cannot identify the red, nir, blue band\(s\).*band 1, band 2"),
        (
            {"band_tags": {"red": {"WAVELENGTH_NM": "842"}}},
            r"band 1 'red' is named red but its wavelength 842 is nir",
        ),
        ({"order": ("red", "green", "blue", "nir"), "extra_tags": {"BANDS": "red,red,blue,nir"}}, r"contradictory"),
        ({"scale": 1.0, "offset": 0.0}, r"band 1 'red' holds integer digital numbers \(uint16\) but states no scale"),
    ],
)
def test_unidentifiable_bands_are_refused_naming_them(tmp_path, kwargs, message):
    reflectance = field_reflectance((64, 80), seed=2)
    reflectance["rededge"] = reflectance["nir"] * 0.8
    scene = Scene(reflectance, **kwargs)
    path = scene.write(tmp_path / "bad.tif")
    with pytest.raises(ImageryError, match=message) as raised:
        process_image(path, [], tmp_path / "out", item_id="bad")
    assert str(path) in str(raised.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_qa_band_decides_cloud_and_shadow(tmp_path):
    scene = small_scene()
    scl = np.full((64, 80), 4, np.uint16)  # vegetation
    scl[:10] = 9  # cloud high probability
    scl[10:12] = 3  # cloud shadow
    scene.extra_bands = {"SCL": scl}
    scene.raw = {("blue", 40, c): reflectance_dn(scene, 0.5) for c in range(80)}  # bright, but SCL says clear
    result = process_image(scene.write(tmp_path / "qa.tif"), [], tmp_path / "out", item_id="qa")
    assert result.masked == {"nodata": 0, "saturated": 0, "zero_sum": 0, "cloud": 800, "shadow": 160}


def truncated(tmp_path: Path) -> Path:
    path = small_scene().write(tmp_path / "whole.tif")
    data = path.read_bytes()
    cut = tmp_path / "truncated.tif"
    cut.write_bytes(data[: len(data) // 2])
    return cut


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (truncated, r"truncated\.tif: corrupt or truncated, rows 0-63, columns 0-79 unreadable"),
        (lambda tmp: (tmp / "notes.tif").write_bytes(b"plot notes, not an image\n") and tmp / "notes.tif", "not a"),
        (lambda tmp: (tmp / "empty.tif").write_bytes(b"") or tmp / "empty.tif", "not a readable GeoTIFF"),
    ],
)
def test_corrupt_truncated_and_non_geotiff_files_fail_with_the_reason(tmp_path, make, message):
    path = make(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ImageryError, match=message):
        process_image(path, [], out, item_id="x")
    assert not out.exists() or not any(out.iterdir())


def test_png_is_not_a_geotiff(tmp_path):
    path = tmp_path / "photo.png"
    with rasterio.open(path, "w", driver="PNG", width=8, height=8, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ImageryError, match=r"photo\.png: not a GeoTIFF \(GDAL reads it as PNG\)"):
        process_image(path, [], tmp_path / "out", item_id="x")


def test_colour_interpretation_only_where_names_are_silent(tmp_path):
    # no descriptions: red/green/blue/nir from the colour interpretation alone
    scene = small_scene(order=("nir", "red", "green", "blue"), descriptions=False)
    path = scene.write(tmp_path / "ci.tif")
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.nir, ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    result = process_image(path, [], tmp_path / "out", item_id="ci")
    dns = scene.digital_numbers()
    r, n = (dns[b].astype(np.float64) * scene.scale + scene.offset for b in ("red", "nir"))
    np.testing.assert_allclose(physical(result.rasters["ndvi"].path), (n - r) / (n + r), atol=NDVI_TOLERANCE)
    # described bands win over a writer's default RGB colour interpretation of the first three bands
    described = small_scene(order=("nir", "red", "blue", "green"))
    path = described.write(tmp_path / "rgb.tif")
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]
    result = process_image(path, [], tmp_path / "out2", item_id="rgb")
    np.testing.assert_allclose(physical(result.rasters["ndvi"].path), (n - r) / (n + r), atol=NDVI_TOLERANCE)


def test_the_files_own_mask_band_is_nodata(tmp_path):
    scene = small_scene(nodata=None)
    path = scene.write(tmp_path / "masked.tif")
    mask = np.full((64, 80), 255, np.uint8)
    mask[:, :7] = 0  # 7 columns outside the flown area
    with rasterio.open(path, "r+") as dst:
        dst.write_mask(mask)
    result = process_image(path, [], tmp_path / "out", item_id="m")
    assert result.masked["nodata"] == 64 * 7


def test_only_the_needed_bands_need_a_calibration(tmp_path):
    # a green band without scale/offset does not stop an image whose red, nir and blue are calibrated
    scene = small_scene()
    path = scene.write(tmp_path / "green.tif")
    with rasterio.open(path, "r+") as dst:
        dst.scales = [scene.scale, 1.0, scene.scale, scene.scale]  # band 2 is green
        dst.offsets = [scene.offset, 0.0, scene.offset, scene.offset]
    result = process_image(path, [], tmp_path / "out", item_id="g")
    assert result.masked == dict.fromkeys(REASONS, 0)
    with rasterio.open(path, "r+") as dst:
        dst.scales = [1.0, scene.scale, scene.scale, scene.scale]  # now red lacks one
        dst.offsets = [0.0, scene.offset, scene.offset, scene.offset]
    with pytest.raises(ImageryError, match="band 1 'red' holds integer digital numbers"):
        process_image(path, [], tmp_path / "out2", item_id="g")


def test_an_unusable_plot_geometry_is_named(tmp_path):
    path = small_scene().write(tmp_path / "ok.tif")
    bowtie = {"type": "Polygon", "coordinates": [[[33, -1], [33.001, -0.999], [33.001, -1], [33, -0.999], [33, -1]]]}
    with pytest.raises(ValueError, match="plot 'KE-9': geometry is empty or invalid"):
        process_image(path, [("KE-9", bowtie)], tmp_path / "out", item_id="p")
