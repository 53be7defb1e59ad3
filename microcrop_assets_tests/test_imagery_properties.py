"""Bad GeoTIFFs never give a traceback or a partial write (issue 17 item 3), property-based with hypothesis.

Each image is a real GeoTIFF written by the imagery fixtures' `Scene`, then damaged: cut short at any byte,
replaced by random bytes, overwritten in place, its TIFF header tags patched (a 0 x 0 or 100,000 x 100,000
image, another band count or sample type, complex ones included), its bands relabelled, recalibrated with
absurd scales/offsets, given a nodata value outside its data type or any pixel values (infinite ones in a
float band). Processing it either succeeds with valid outputs (NaN only where a pixel is masked, finite
plot statistics, strict-JSON STAC Items) or raises ImageryError in one line naming the file, with nothing
printed besides (no Python warning, no exception reported from a C callback) and nothing left in the output
folder; through the `ndvi_rasters` asset, a refused image leaves no object in the object store (moto) and
no row in PostgreSQL. Each damaged image is a recipe (a dataclass): a failing example shows how to rebuild it.
"""

import datetime as dt
import functools
import hashlib
import json
import math
import resource
import struct
import sys
import tempfile
import tracemalloc
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import rasterio
import sqlalchemy as sa
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from rasterio.enums import ColorInterp

from microcrop_assets.cli import main
from microcrop_assets.defs.imagery.assets import ndvi_rasters
from microcrop_assets.defs.imagery.rasters import (
    DEFAULT_MAX_IMAGE_BANDS,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageResult,
    ImageryError,
    process_image,
)
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.science.vegetation import INT16_NODATA, VegetationParams
from microcrop_assets_tests.fixtures.imagery import PLOT_PROPERTIES, Scene, field_reflectance
from microcrop_assets_tests.fixtures.orders import empty_imagery

SHAPE = (24, 36)  # rows, columns: one 256 px tile per band, a few kB a file
DTYPES = ("uint16", "uint8", "int16", "float32")
ITEM = "order-1"
BLOCKS = VegetationParams(block_rows=8, block_cols=16)  # 3 x 3 blocks: a refusal may come after blocks are written
STATISTICS = ("ndvi_mean", "ndvi_median", "ndvi_p10", "ndvi_p90", "evi_mean", "lai_mean")
# TIFF tags (TIFF 6.0) and field types
WIDTH, HEIGHT, BITS, COMPRESSION, PHOTOMETRIC, SAMPLES, PLANAR, SAMPLE_FORMAT = 256, 257, 258, 259, 262, 277, 284, 339
TILE_WIDTH, TILE_LENGTH, GDAL_METADATA, GDAL_NODATA = 322, 323, 42112, 42113
ASCII, SHORT, LONG = 2, 3, 4


def scene(dtype: str = "uint16", bands: int | None = None) -> Scene:
    """The scene every image starts from: red, green, blue, nir, or `bands` unlabelled bands cycling
    through them."""
    reflectance = field_reflectance(SHAPE, seed=11)
    if bands is None:
        return Scene(reflectance, dtype=dtype)
    names = ("red", "green", "blue", "nir")
    cycled = {f"b{number}": reflectance[names[number % 4]] for number in range(bands)}
    return Scene(cycled, order=tuple(cycled), dtype=dtype, descriptions=False)


# two plots: one inside the image, one half beyond its east edge (its uncovered pixels are counted too)
PLOTS = [("KE-IN", scene().plot(3.2, 2.7, 30.4, 20.1)), ("KE-EDGE", scene().plot(20.3, 5.2, 50.6, 15.7))]
PLOT_FEATURE = {"type": "Feature", "properties": {"plot_id": "KE-IN", **PLOT_PROPERTIES}, "geometry": PLOTS[0][1]}


@functools.cache
def good_tiff(dtype: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return scene(dtype).write(Path(folder) / "good.tif").read_bytes()


def ifd_entries(data: bytes) -> list[tuple[int, int, int, int]]:
    """(position, tag, field type, value count) of each entry of the first IFD of a classic little-endian
    TIFF, as GDAL writes a small one."""
    assert data[:4] == b"II*\x00"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    return [(at, *struct.unpack_from("<HHI", data, at)) for at in range(ifd + 2, ifd + 2 + 12 * entries, 12)]


def tag_value_offset(data: bytes, wanted: int) -> int:
    """Where the value of tag `wanted` starts (one stored beyond its entry)."""
    return next(struct.unpack_from("<I", data, at + 8)[0] for at, tag, _, _ in ifd_entries(data) if tag == wanted)


def patch_tags(data: bytes, values: dict[int, int | bytes]) -> bytes:
    """`data` with tags of its first IFD set: an integer tag (every value of a SHORT array such as
    BitsPerSample, else one LONG), or an ASCII tag (bytes, appended to the file when longer than the
    4 bytes inside the entry)."""
    patched = bytearray(data)
    for at, tag, kind, count in ifd_entries(data):
        value = values.get(tag)
        if value is None:
            continue
        if isinstance(value, bytes):
            text = value + b"\x00"
            inline = len(text) <= 4
            struct.pack_into("<HHI", patched, at, tag, ASCII, len(text))
            patched[at + 8 : at + 12] = text.ljust(4, b"\x00") if inline else struct.pack("<I", len(patched))
            if not inline:
                patched += text
        elif count == 1:
            struct.pack_into("<HHII", patched, at, tag, LONG, 1, value)
        else:
            assert kind == SHORT
            start = tag_value_offset(data, tag) if count > 2 else at + 8  # 2 SHORTs fit in the entry
            struct.pack_into(f"<{count}H", patched, start, *[value] * count)
    return bytes(patched)


# -- the damaged images: each a recipe that writes its file, shown as such in a failing example -------------


@dataclass(frozen=True)
class Truncated:
    dtype: str
    cut: int

    def write(self, path: Path) -> None:
        path.write_bytes(good_tiff(self.dtype)[: self.cut])


@dataclass(frozen=True)
class RandomBytes:
    data: bytes

    def write(self, path: Path) -> None:
        path.write_bytes(self.data)


@dataclass(frozen=True)
class Overwritten:
    dtype: str
    at: int
    data: bytes

    def write(self, path: Path) -> None:
        good = good_tiff(self.dtype)
        path.write_bytes(good[: self.at] + self.data + good[self.at + len(self.data) :])


@dataclass(frozen=True)
class Retagged:
    dtype: str
    tags: tuple[tuple[int, int], ...]

    def write(self, path: Path) -> None:
        path.write_bytes(patch_tags(good_tiff(self.dtype), dict(self.tags)))


@dataclass(frozen=True)
class Relabelled:
    """Band count, descriptions (None: none), wavelength tags, the file's BANDS tag, colour interpretation."""

    descriptions: tuple[str | None, ...]
    wavelengths: tuple[str | None, ...]
    listed: str | None = None
    colorinterp: tuple[ColorInterp, ...] | None = None
    dtype: str = "uint16"

    def write(self, path: Path) -> None:
        scene(self.dtype, len(self.descriptions)).write(path)
        with rasterio.open(path, "r+") as dst:
            for number, (text, wavelength) in enumerate(zip(self.descriptions, self.wavelengths, strict=True), 1):
                if text is not None:
                    dst.set_band_description(number, text)
                if wavelength is not None:
                    dst.update_tags(number, wavelength=wavelength)
            if self.listed is not None:
                dst.update_tags(BANDS=self.listed)
            if self.colorinterp is not None:
                dst.colorinterp = self.colorinterp


@dataclass(frozen=True)
class Recalibrated:
    """Per band: a GDAL scale and offset, or (None) GDAL's unset 1 / 0 with SCALE / OFFSET tag texts."""

    dtype: str
    gdal: tuple[tuple[float, float] | None, ...]  # red, green, blue, nir
    band_tags: tuple[dict[str, str], ...]
    file_tags: dict[str, str]

    def write(self, path: Path) -> None:
        base = scene(self.dtype)
        base.write(path)
        with rasterio.open(path, "r+") as dst:
            dst.scales = [pair[0] if pair else 1.0 for pair in self.gdal]
            dst.offsets = [pair[1] if pair else 0.0 for pair in self.gdal]
            for number, tags in enumerate(self.band_tags, 1):
                dst.update_tags(number, **tags)
            dst.update_tags(**self.file_tags)


@dataclass(frozen=True)
class Renodata:
    """The file's GDAL nodata tag (one value for every band) set to any text, in range or not."""

    dtype: str
    text: bytes

    def write(self, path: Path) -> None:
        path.write_bytes(patch_tags(good_tiff(self.dtype), {GDAL_NODATA: self.text}))


@dataclass(frozen=True)
class Repixelled:
    """Pixels of the red, nir or blue band set to any value of the data type (infinite or NaN in a float band)."""

    dtype: str
    pixels: tuple[tuple[str, int, int, float], ...]  # band, row, column, value

    def write(self, path: Path) -> None:
        base = scene(self.dtype)
        base.raw = {(band, row, col): value for band, row, col, value in self.pixels}
        base.write(path)


def cuts(dtype: str) -> st.SearchStrategy[Truncated]:
    return st.builds(Truncated, st.just(dtype), st.integers(0, len(good_tiff(dtype)) - 1))


def overwrites(dtype: str) -> st.SearchStrategy[Overwritten]:
    size = len(good_tiff(dtype))
    return st.builds(Overwritten, st.just(dtype), st.integers(0, size - 1), st.binary(min_size=1, max_size=16))


MAGIC = st.sampled_from([b"", b"II*\x00", b"MM\x00*", b"II+\x00\x08\x00\x00\x00", b"II*\x00\x08\x00\x00\x00"])
# an absurd number, or a plain one: a few of each kind before anything hypothesis makes up
ABSURD = st.sampled_from([0.0, -0.0, -1e-4, -1.0, math.inf, -math.inf, math.nan, 1e30, -1e30, 1e-30, 5e-324, 1e308])
NUMBERS = ABSURD | st.floats() | st.sampled_from([1e-4, 2.75e-5, -0.1, 0.0, 1.0])
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
PADDING = st.sampled_from(["", " ", "\n"])  # float() reads a number with white space around it


def padded(numbers: st.SearchStrategy) -> st.SearchStrategy[str]:
    return st.builds(lambda before, number, after: f"{before}{number}{after}", PADDING, numbers, PADDING)


NUMBER_TEXT = padded(NUMBERS.map(repr)) | TEXT
NAMES = st.sampled_from(
    ["red", "nir", "blue", "green", "NIR", "Near-Infrared", "nir08", "Red ", "red_edge", "SCL", "QA_PIXEL", "mask", ""]
)
# centre wavelengths of blue, green, red, red edge and nir (nm, one in micrometres), or any text
WAVELENGTHS = st.none() | padded(st.sampled_from(["490", "560", "665", "720", "842", "0.842"])) | NUMBER_TEXT


@st.composite
def relabellings(draw) -> Relabelled:
    """Mostly a shuffle of real band names with a few replaced by anything; at times more bands than allowed."""
    count = draw(st.integers(1, 8).map(lambda n: {7: DEFAULT_MAX_IMAGE_BANDS + 1, 8: 64}.get(n, n)))
    names = ["red", "nir", "blue", "green", "rededge", "SCL"] * 11
    shuffled = draw(st.permutations(names[:count]))
    replaced = st.lists(st.tuples(st.integers(0, count - 1), st.none() | NAMES | TEXT), max_size=2)
    descriptions = list(shuffled)
    for number, text in draw(replaced):
        descriptions[number] = text
    centres = {"red": "665", "nir": "842", "blue": "490", "green": "560", "rededge": "720"}  # nm
    wavelengths = (
        st.just([None] * count)
        | st.just([centres.get(name) for name in shuffled])
        | st.lists(WAVELENGTHS, min_size=count, max_size=count)
    )
    interpretations = st.sampled_from(
        [
            ColorInterp.red,
            ColorInterp.green,
            ColorInterp.blue,
            ColorInterp.alpha,
            ColorInterp.gray,
            ColorInterp.undefined,
        ]
    )
    return Relabelled(
        tuple(descriptions),
        tuple(draw(wavelengths)),
        draw(
            st.none()
            | st.just(",".join(text or "" for text in descriptions))
            | st.lists(NAMES, max_size=7).map(",".join)
        ),
        draw(st.none() | st.lists(interpretations, min_size=count, max_size=count).map(tuple)),
        draw(st.sampled_from(["uint16", "uint8"])),
    )


@st.composite
def recalibrations(draw) -> Recalibrated:
    pairs = st.none() | st.tuples(NUMBERS, NUMBERS) | st.just((1e-4, -0.1))  # None: GDAL's unset 1 / 0
    tag_keys = st.sampled_from(["SCALE", "scale_factor", "OFFSET", "add_offset"])
    tags = st.dictionaries(tag_keys, NUMBER_TEXT, max_size=2)
    return Recalibrated(
        draw(st.sampled_from(DTYPES)),
        draw(st.lists(pairs, min_size=4, max_size=4).map(tuple)),
        draw(st.lists(tags, min_size=4, max_size=4).map(tuple)),
        draw(tags),
    )


@st.composite
def repixellings(draw) -> Repixelled:
    dtype = draw(st.sampled_from(DTYPES))
    kind = np.dtype(dtype)
    if kind.kind == "f":
        values = st.sampled_from([math.inf, -math.inf, math.nan, 3.4e38, -3.4e38]) | st.floats(width=32)
    else:
        values = st.integers(np.iinfo(kind).min, np.iinfo(kind).max)
    pixel = st.tuples(
        st.sampled_from(["red", "nir", "blue"]), st.integers(0, SHAPE[0] - 1), st.integers(0, SHAPE[1] - 1), values
    )
    return Repixelled(dtype, tuple(draw(st.lists(pixel, min_size=1, max_size=8))))


NODATA_TEXT = (
    st.sampled_from(["-1", "-1e300", "70000", "18446744073709551616", "1e40", "inf", "-inf", "nan", "65535.5", "0.5"])
    | NUMBERS.map(repr)
    | st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=24)
)
# any value of a few layout tags, or a sample type: SampleFormat (1 unsigned, 2 signed, 3 float, 5 complex
# integer, 6 complex float) with a bit depth
RETAGS = st.lists(
    st.tuples(
        st.sampled_from([BITS, COMPRESSION, PHOTOMETRIC, SAMPLES, PLANAR, SAMPLE_FORMAT, TILE_WIDTH, TILE_LENGTH]),
        st.sampled_from([0, 1, 2, 3, 5, 6, 8, 12, 16, 32, 33, 64, 65535]) | st.integers(0, 65535),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda pair: pair[0],
).map(tuple) | st.tuples(
    st.tuples(st.just(SAMPLE_FORMAT), st.integers(0, 7)),
    st.tuples(st.just(BITS), st.sampled_from([1, 8, 12, 16, 24, 32, 64])),
)
# the claimed sizes: nothing, a few pixels, the real size or larger (memory and time bounded by the real
# data), beyond the limit (100,000 x 100,000 and TIFF's largest); never a large claim within the limit,
# which is processed as the sparse image it is (seconds per example)
SIDES = st.sampled_from([0, 1, 7, SHAPE[0], SHAPE[1], 3 * SHAPE[1], 100_000, 2**31 - 1, 2**32 - 1])
CLAIMS = st.tuples(SIDES, SIDES).filter(lambda wh: wh[0] * wh[1] <= 10**5 or wh[0] * wh[1] > DEFAULT_MAX_IMAGE_PIXELS)
DAMAGED = (
    st.sampled_from(DTYPES).flatmap(cuts)
    | st.builds(RandomBytes, st.builds(bytes.__add__, MAGIC, st.binary(max_size=2048)))
    | st.sampled_from(DTYPES).flatmap(overwrites)
    | st.builds(Retagged, st.sampled_from(DTYPES), RETAGS)
    | relabellings()
    | recalibrations()
    | st.builds(Renodata, st.sampled_from(DTYPES), NODATA_TEXT.map(str.encode))
    | repixellings()
)


# -- the properties ---------------------------------------------------------------------------------------


def processed_or_refused(recipe, folder: Path) -> ImageResult | ImageryError:
    """Property 1 and 2 on one damaged image: processed with valid outputs, or refused in one line naming
    the file, with no Python warning (one more line on the command line's stderr; GDAL's own messages
    go to rasterio's logger, which prints nothing) and nothing left in the output folder. Any other
    exception fails the test."""
    image, out = folder / "order 1.tif", folder / "out"
    recipe.write(image)
    # an exception raised where nothing can catch it (in a C callback) is printed on stderr through these hooks
    printed, hooks = [], (sys.excepthook, sys.unraisablehook)
    sys.excepthook, sys.unraisablehook = lambda kind, value, traceback: printed.append(value), printed.append
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = process_image(image, PLOTS, out, item_id=ITEM, params=BLOCKS)
    except ImageryError as error:
        message = str(error)
        assert message.startswith(f"{image}: ") and len(message.splitlines()) == 1, message
        # a ResourceWarning is another test's object collected now (an unclosed socket), not this image's
        assert [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)] == []
        assert not out.exists() or list(out.rglob("*")) == []  # no COG, no Item, no .partial-* folder
        if currently_in_test_context():  # the outcomes hypothesis tallies (--hypothesis-show-statistics)
            event(f"refused: {message.removeprefix(f'{image}: ').split(':')[0][:48]}")
        return error
    finally:
        sys.excepthook, sys.unraisablehook = hooks
        assert [repr(getattr(report, "exc_value", report)) for report in printed] == []
    assert_valid_outputs(result, out)
    if currently_in_test_context():
        event("processed")
    return result


def strict_json(text: str):
    def refuse(constant: str):
        raise AssertionError(f"{constant} in a STAC Item (not JSON)")

    return json.loads(text, parse_constant=refuse)


def assert_valid_outputs(result: ImageResult, out: Path) -> None:
    """The six files and nothing else; NaN (stored nodata) only where a pixel is masked; plot statistics
    finite or None."""
    names = {f"{ITEM}_{index}.{suffix}" for index in ("ndvi", "evi", "lai") for suffix in ("tif", "json")}
    assert {path.name for path in out.iterdir()} == names
    masked = sum(result.masked.values())
    for index, raster in result.rasters.items():
        assert strict_json(raster.stac_path.read_text())["id"] == f"{ITEM}-{index}"
        with rasterio.open(raster.path) as cog:
            assert (cog.width, cog.height) == (result.width, result.height)
            nodata = int(np.count_nonzero(cog.read(1) == INT16_NODATA))
        # NDVI is NaN exactly where masked; EVI and LAI also where EVI's denominator is 0
        assert nodata == masked if index == "ndvi" else nodata >= masked, (index, nodata, result.masked)
    for stats in result.plots:
        assert all(getattr(stats, name) is None or math.isfinite(getattr(stats, name)) for name in STATISTICS), stats
        assert 0 <= stats.valid_fraction <= 1 and sum(stats.masked.values()) <= stats.pixels


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A fresh folder per example (module scope: hypothesis runs many examples in one test call)."""
    root = tmp_path_factory.mktemp("damaged")

    def fresh() -> tempfile.TemporaryDirectory:
        return tempfile.TemporaryDirectory(dir=root)

    return fresh


def check(recipe, folders) -> ImageResult | ImageryError:
    with folders() as folder:
        return processed_or_refused(recipe, Path(folder))


@pytest.mark.unit
@given(recipe=st.sampled_from(DTYPES).flatmap(cuts))
@settings(max_examples=120)
@example(recipe=Truncated("uint16", 276))  # found: GDAL's header read, no geotransform, warned before our line
def test_an_image_cut_short_at_any_byte_is_refused_in_one_line_leaving_nothing(folders, recipe):
    assert isinstance(check(recipe, folders), ImageryError)  # the last tile's end is the last byte


@pytest.mark.unit
@given(data=st.builds(bytes.__add__, MAGIC, st.binary(max_size=2048)))
@settings(max_examples=60)
def test_random_bytes_are_refused_in_one_line_leaving_nothing(folders, data):
    assert isinstance(check(RandomBytes(data), folders), ImageryError)


@pytest.mark.unit
@given(recipe=st.sampled_from(DTYPES).flatmap(overwrites) | st.builds(Retagged, st.sampled_from(DTYPES), RETAGS))
@settings(max_examples=100)
@example(recipe=Overwritten("uint16", 350, b"\x80"))  # found: a byte of the GDAL metadata XML, see the next test
@example(recipe=Retagged("uint16", ((SAMPLE_FORMAT, 5), (BITS, 32))))  # found: complex integers, see the test after
def test_an_image_overwritten_in_place_or_with_odd_header_tags_is_processed_or_refused(folders, recipe):
    check(recipe, folders)


@pytest.mark.unit
def test_gdal_metadata_that_is_not_utf8_gives_one_line_on_the_command_line(tmp_path, capsys):
    """Found by the property above: one byte of the GDAL metadata XML (band descriptions, scales) made
    0x80. GDAL's XML parser quotes it in an error that rasterio decodes as UTF-8 in a C callback, which
    printed "UnicodeDecodeError: ..." and an "Exception ignored in: 'rasterio._env.log_error'" traceback
    before `microcrop ndvi`'s own line (rasterio issue 3128)."""
    good = good_tiff("uint16")
    at = tag_value_offset(good, GDAL_METADATA) + 1  # GDAL_METADATA: "<GDALMetadata>...", the byte after "<"
    image = tmp_path / "order-9.tif"
    image.write_bytes(good[:at] + b"\x80" + good[at + 1 :])
    plots = tmp_path / "plots.geojson"
    plots.write_text(json.dumps({"type": "FeatureCollection", "features": [PLOT_FEATURE]}))
    assert main(["ndvi", str(image), "--plots", str(plots), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        f"microcrop ndvi: {image}: cannot identify the red, nir, blue band(s) by description, tags or wavelength "
        "(bands: band 1, band 2, band 3, band 4); red, nir and blue are needed\n"
    )


@pytest.mark.unit
def test_complex_pixels_are_refused_naming_their_type(tmp_path):
    """Found by the property above: SampleFormat 5 (complex integer) with 32 bits is GDAL's CInt16, which
    numpy does not know (a raw TypeError); a complex64 GeoTIFF got as far as the numba kernel (a raw
    NumbaNotImplementedError after compiling)."""
    cint16, complex64 = tmp_path / "cint16.tif", tmp_path / "complex64.tif"
    Retagged("uint16", ((SAMPLE_FORMAT, 5), (BITS, 32))).write(cint16)
    scene("complex64").write(complex64)
    for image, dtype in ((cint16, "complex_int16"), (complex64, "complex64")):
        with pytest.raises(ImageryError) as refused:
            process_image(image, PLOTS, tmp_path / "out", item_id=ITEM)
        assert str(refused.value) == f"{image}: its pixels are {dtype}, not real numbers (integer or floating point)"
    assert not (tmp_path / "out").exists()


@pytest.mark.unit
@given(recipe=relabellings())
@settings(max_examples=80)
# found: the wavelength tag's text was quoted as it is, newline included, making the message two lines
@example(recipe=Relabelled(("red", "green", "blue"), (None, None, "0\n")))
def test_any_band_count_and_labels_are_processed_or_refused_naming_the_bands(folders, recipe):
    outcome = check(recipe, folders)
    if len(recipe.descriptions) > DEFAULT_MAX_IMAGE_BANDS:
        assert f"claims {len(recipe.descriptions)} bands, more than MICROCROP_MAX_IMAGE_BANDS" in str(outcome)
    elif len(recipe.descriptions) < 3:  # red, nir and blue cannot be three different bands
        assert isinstance(outcome, ImageryError)


@pytest.mark.unit
@given(recipe=recalibrations())
@settings(max_examples=80)
# found: SCALE=1e308 makes red and nir infinite, so NDVI was NaN on pixels counted valid (plot means NaN)
@example(recipe=Recalibrated("uint16", (None, None, (1e-4, 0.0), None), ({}, {}, {}, {}), {"SCALE": "1e+308"}))
def test_absurd_scales_and_offsets_are_processed_or_refused_naming_the_value(folders, recipe):
    outcome = check(recipe, folders)
    needed = [recipe.gdal[number] for number in (0, 3, 2)]  # red, nir, blue: the order they are calibrated in
    unusable = [pair for pair in needed if pair and (pair[0] == 0 or not all(map(math.isfinite, pair)))]
    if unusable and all(pair and pair != (1.0, 0.0) for pair in needed):  # GDAL's own calibrations, no tags:
        # the first bad one is named
        assert isinstance(outcome, ImageryError)
        assert f"unusable scale {unusable[0][0]} / offset {unusable[0][1]}" in str(outcome)


@pytest.mark.unit
@given(recipe=repixellings())
@settings(max_examples=40)
# the kind of the failure found with absurd scales: NDVI NaN on a pixel counted valid, here from one infinite value
@example(recipe=Repixelled("float32", (("red", 1, 1, math.inf),)))
def test_any_pixel_values_infinite_ones_included_are_processed_or_refused(folders, recipe):
    check(recipe, folders)


@pytest.mark.unit
def test_reflectance_beyond_the_floating_point_range_is_refused_naming_the_rows_and_the_scales(folders):
    """Found by the two properties above: a file SCALE tag of 1e308 (red and nir infinite) and one infinite
    red value in a float band gave NDVI NaN on pixels counted valid, so a plot's NDVI mean was NaN."""
    overflowing = Recalibrated("uint16", (None, None, (1e-4, 0.0), None), ({}, {}, {}, {}), {"SCALE": "1e+308"})
    assert str(check(overflowing, folders)).endswith(
        ": rows 0-7, columns 0-15: reflectance (value x scale + offset) infinite or beyond the floating-point "
        "range at 128 pixel(s) (red scale 1e+308 / offset 0.0, nir scale 1e+308 / offset 0.0, "
        "blue scale 0.0001 / offset 0.0)"
    )
    infinite = Repixelled("float32", (("red", 20, 33, math.inf),))  # in the last block, after eight are written
    message = str(check(infinite, folders))
    assert ": rows 16-23, columns 32-35: reflectance (value x scale + offset) infinite" in message
    assert "floating-point range at 1 pixel(s) (red scale 0.0001 / offset -0.1," in message


@pytest.mark.unit
@given(recipe=st.builds(Renodata, st.sampled_from(DTYPES), NODATA_TEXT.map(str.encode)))
@settings(max_examples=40)
def test_a_nodata_value_outside_the_data_type_is_processed_or_refused(folders, recipe):
    check(recipe, folders)


def address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


@pytest.mark.unit
@given(dtype=st.sampled_from(DTYPES), claim=CLAIMS)
@settings(max_examples=60)
@example(dtype="uint16", claim=(100_000, 100_000))
@example(dtype="uint16", claim=(0, 0))
def test_a_header_claiming_0_x_0_or_100000_x_100000_pixels_is_refused_without_allocating_them(folders, dtype, claim):
    """The header's ImageWidth / ImageLength patched in a few-kB file. Python's allocations are traced;
    GDAL's (C) are held under 1 GiB more address space than the process has (the claimed 10^10 pixels
    are 20 GB), so an attempt fails instead of swapping the machine."""
    width, height = claim
    recipe = Retagged(dtype, ((WIDTH, width), (HEIGHT, height)))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (address_space() + 2**30, hard))
    tracemalloc.start()
    try:
        outcome = check(recipe, folders)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert peak < 64 * 2**20
    if width * height > DEFAULT_MAX_IMAGE_PIXELS:
        assert isinstance(outcome, ImageryError)
        assert f"claims {width} x {height} = {width * height} pixels" in str(outcome) or "not a readable" in str(
            outcome
        )
    elif width * height == 0:
        assert isinstance(outcome, ImageryError)
    else:
        assert (outcome.width, outcome.height) == claim


# -- through the ndvi_rasters asset: object store (moto) and PostgreSQL -----------------------------------


@pytest.fixture(scope="module")
def registry(db):
    """The demo plots in the registry, no imagery rows (before and after); each example uses a day of its own."""
    empty_imagery(db)
    yield db
    empty_imagery(db)


DAYS = iter(dt.date(2025, 7, 1) + dt.timedelta(days=n) for n in range(10_000))


def add_orders(db, store, day: dt.date, images: list[bytes], prefix: str) -> list[str]:
    """Completed orders captured on `day` (one per demo plot) whose raw images are already stored with
    their sha256 recorded, so `ndvi_rasters` reuses them without asking Spexi."""
    plot_ids = [row.plot_id for row in db.read_frame("SELECT plot_id FROM plots ORDER BY plot_id").itertuples()]
    order_ids = []
    with db.begin() as conn:
        for number, (plot_id, image) in enumerate(zip(plot_ids, images, strict=False)):
            order_id = f"ord-{day:%m%d}-{number}"
            key = f"{prefix}/raw/{day}/{order_id}.tif"
            store.put(key, image)
            conn.execute(
                sa.text(
                    "INSERT INTO satellite_orders (request_id, order_id, plot_id, reason, priority, requested_day,"
                    " window_end, requested_at, capture_date, status, image_key, image_sha256)"
                    " VALUES (:rid, :oid, :plot, 'routine', 'standard', :day, :end, :at, :day, 'completed', :key,"
                    " :sha)"
                ),
                {
                    "rid": f"req-{order_id}",
                    "oid": order_id,
                    "plot": plot_id,
                    "day": day,
                    "end": day + dt.timedelta(days=1),
                    "at": dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC),
                    "key": key,
                    "sha": hashlib.sha256(image).hexdigest(),
                },
            )
            order_ids.append(order_id)
    return order_ids


@pytest.mark.integration
@given(recipes=st.lists(DAMAGED, min_size=1, max_size=5))
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_through_the_asset_a_refused_image_leaves_no_object_and_no_row(registry, s3_store, redis_resource, recipes):
    """A day's orders: a good image, then the damaged ones. Each order ends failed with a one-line
    "unusable image" error and nothing stored or recorded for it, or processed with its three COGs and
    STAC Items stored and its plot's row recorded; the good image is always processed. (One bucket for
    every example: each has its own day and key prefix.)"""
    day, prefix = next(DAYS), f"p{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        images = [good_tiff("uint16")]
        for number, recipe in enumerate(recipes):
            recipe.write(Path(folder) / f"{number}.tif")
            images.append((Path(folder) / f"{number}.tif").read_bytes())
    order_ids = add_orders(registry, s3_store, day, images, prefix)
    spexi = SpexiResource(redis=redis_resource, api_url="http://127.0.0.1:9/not-called", api_key="unused")
    result = dg.materialize(
        [ndvi_rasters],
        resources={"timescaledb": registry, "object_store": s3_store, "spexi": spexi},
        partition_key=day.isoformat(),
        run_config={"ops": {"ndvi_rasters": {"config": {"key_prefix": prefix}}}},
    )
    assert result.success
    stored = s3_store.list(f"{prefix}/rasters/")
    rows = registry.read_frame("SELECT order_id FROM plot_ndvi_observations WHERE capture_date = :d", {"d": day})
    orders = registry.read_frame(
        "SELECT order_id, status, error FROM satellite_orders WHERE capture_date = :d", {"d": day}
    ).set_index("order_id")
    for number, order_id in enumerate(order_ids):
        mine = sorted(key.rsplit("/", 1)[1] for key in stored if f"/{order_id}_" in key)
        order = orders.loc[order_id]
        if order["status"] == "failed":  # named by the order's image file (the error names its local copy)
            assert number > 0 and order["error"].startswith("unusable image: ") and "\n" not in order["error"]
            assert f"{order_id}.tif: " in order["error"]
            assert mine == [] and order_id not in set(rows["order_id"])
        else:
            assert order["status"] == "completed" and pd.isna(order["error"]) and order_id in set(rows["order_id"])
            assert mine == sorted(f"{order_id}_{i}.{s}" for i in ("evi", "lai", "ndvi") for s in ("json", "tif"))
    event(f"{(orders['status'] == 'failed').sum()} of {len(recipes)} damaged images refused")
    assert s3_store.list(f"{prefix}/raw/") == [f"{prefix}/raw/{day}/{order_id}.tif" for order_id in order_ids]
