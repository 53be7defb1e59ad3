"""One multispectral GeoTIFF -> NDVI, EVI and LAI Cloud Optimized GeoTIFFs + STAC Items + plot statistics.

No Dagster here: the imagery assets and `microcrop ndvi` both call `process_image`.

Band identification (never by position): each band's role comes from, in order of trust,
1. its name: the GDAL band description, a band tag `name` / `BANDNAME` / `band_name` /
   `common_name`, or the file's `BANDS` / `band_names` tag listing every band; matched exactly
   (case, spaces, `-` and `_` ignored) against red, green, blue, nir / near-infrared / nir08;
   red-edge, coastal, SWIR... are recognised as other bands, never as red or nir;
2. its centre wavelength: a band tag `wavelength` / `wavelength_nm` / `central_wavelength`, or
   GDAL's IMAGERY `CENTRAL_WAVELENGTH_UM` (values below 10 are micrometres), in the STAC common-name
   ranges blue 450-520, green 520-600, red 600-690, nir 750-1000 nm (690-750 nm is red edge);
3. its GDAL colour interpretation (red, green, blue, nir), only for bands with no name or
   wavelength and roles no other band claims (GeoTIFF writers set RGB colour interpretation by default).
A name and a wavelength that disagree, two bands claiming one role, or a missing red, nir or blue
band is an ImageryError naming the bands.

A band named `SCL` (Sentinel-2 scene classification), `QA_PIXEL` / `pixel_qa` (Landsat Collection 2
bits) or `cloud_mask` / `cloud` / `mask` (0 clear, 2 shadow, other values cloud) is the cloud/shadow
mask; without one the brightness test of `science/vegetation.py` applies. GDAL's own per-dataset
mask or alpha band marks nodata.

Reflectance: `DN x scale + offset` with the band's GDAL scale and offset, or, where those are unset,
the band's (then the file's) `SCALE` / `scale_factor` and `OFFSET` / `add_offset` tags. Integer bands
with neither are refused (their reflectance is unknown); float bands without them are reflectance.
An infinite reflectance on a pixel not otherwise masked (an infinite value in a float band, or a scale or
offset so large that the product overflows) is refused too, naming the rows and the scales.

Outputs: int16 COGs on the image's own grid (CRS, transform, size): NDVI and EVI x 10000, LAI x 1000
(`STORED_FACTORS`), rounded half to even, nodata -32768 where the float value is NaN, values beyond
+-32767 clipped and counted (`RasterOutput.clipped`, the COG's CLIPPED_PIXELS tag, the Item's
`microcrop:clipped_pixels`); the scale (1 / factor) and offset 0 are the band's GDAL scale/offset, so
GDAL readers that unscale get the physical value. 512 px blocks, ZSTD with horizontal differencing
(predictor 2, the integer one), average-resampled overviews (nodata excluded) down to one block, and
beside each a STAC Item (rio-stac: projection and raster extensions, the latter with data_type,
scale, offset, nodata and statistics in stored integers; the asset referenced relatively so the pair
can move together to object storage). Plot statistics come from the float32 arrays in memory, never
from the stored integers. The raster is processed in blocks of `params.block_rows` x
`params.block_cols` pixels; memory stays bounded by the block and the plots' windows, whatever the
raster size. Files appear in `out_dir` only once all six are complete; a refused or failed image
leaves nothing there (its work folder `.partial-*` is removed).

Limits (hostile or broken files): the header's width x height and band count are checked before any
pixel is read, so a small sparse file whose header claims 100,000 x 100,000 pixels is refused at
once. `MICROCROP_MAX_IMAGE_PIXELS`, default 100 million (10,000 x 10,000: a 50 ha plot, the
registry's largest, at 7 cm; about 6-14 s at the measured COG throughput, and at most 1.4 GB of
plot arrays, 14 bytes a pixel, for a plot covering the whole image); `MICROCROP_MAX_IMAGE_BANDS`,
default 32 (Sentinel-2 L2A has 13 bands plus its masks).

Plots: the GeoJSON polygon (EPSG:4326) reprojected to the raster's CRS; a pixel is in the plot when
its centre is (GDAL rasterisation's rule). The plot's pixels beyond the image's edge count as nodata,
so an image covering part of a plot has a valid fraction below 1; a plot the image does not touch
at all has no statistics. A plot's arrays cover only its part of the image, and its pixels beyond
the edge are counted tile by tile (tiles wholly inside or outside it without rasterising), so a plot
far larger than the image costs memory bounded by the image, not by the plot.
"""

from __future__ import annotations  # no Dagster definitions here; rasterio's Window is for type checking only

import contextlib
import datetime as dt
import hashlib
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine

from microcrop_assets import settings
from microcrop_assets.science.vegetation import (
    BANDS,
    INT16_NODATA,
    REASONS,
    STORED_FACTORS,
    BandCalibration,
    Indices,
    PlotStatistics,
    VegetationParams,
    empty_plot_statistics,
    plot_statistics,
    qa_codes,
    quantize,
    saturation_value,
    vegetation_indices,
)

# rasterio, shapely, pyproj, pystac and rio-stac are imported by the functions that use them: loading
# the definitions imports this module and needs none of them (issue 18)
if TYPE_CHECKING:
    from rasterio.windows import Window

__all__ = ["ImageResult", "ImageryError", "PlotStatistics", "RasterOutput", "VegetationParams", "process_image"]

INDICES = ("ndvi", "evi", "lai")
COG_BLOCK = 512
GDAL_CACHE_BYTES = 128 * 1024 * 1024  # GDAL defaults to 5 % of RAM: bound it so a large image stays well under 1 GB
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000  # width x height (see the module docstring)
DEFAULT_MAX_IMAGE_BANDS = 32
MASK_TILE_PIXELS = 1 << 16  # a plot's pixels beyond the image are counted in tiles of at most this many
_FORMULAS = {
    "ndvi": "(N - R) / (N + R)",
    "evi": "2.5 (N - R) / (N + 6R - 7.5B + 1)",
    "lai": "max(3.618 EVI - 0.118, 0) (Boegh 2002)",
}
_NAMES = {
    "red": "red",
    "green": "green",
    "blue": "blue",
    "nir": "nir",
    "nearinfrared": "nir",
    "nearir": "nir",
    "nir08": "nir",
    "rededge": "other",
    "coastal": "other",
    "yellow": "other",
    "pan": "other",
    "nir09": "other",
    "cirrus": "other",
    "swir16": "other",
    "swir22": "other",
    "swir": "other",
    "lwir": "other",
    "alpha": "other",
    "scl": "qa:scl",
    "sceneclassification": "qa:scl",
    "qapixel": "qa:landsat_qa",
    "pixelqa": "qa:landsat_qa",
    "cloudmask": "qa:cloud_mask",
    "cloud": "qa:cloud_mask",
    "clouds": "qa:cloud_mask",
    "mask": "qa:cloud_mask",
}
_WAVELENGTHS_NM = (("blue", 450, 520), ("green", 520, 600), ("red", 600, 690), ("other", 690, 750), ("nir", 750, 1000))
_NAME_TAGS = ("name", "bandname", "band_name", "common_name")
_WAVELENGTH_TAGS = ("wavelength", "wavelength_nm", "central_wavelength", "center_wavelength", "centre_wavelength")
_SCALE_TAGS = ("scale", "scale_factor")
_OFFSET_TAGS = ("offset", "add_offset")
_TIME_TAGS = ("captured_at", "capture_date", "acquisition_date", "datetime", "tifftag_datetime")
_REAL_SAMPLES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")
_ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ImageryError(ValueError):
    """An unusable image; the message names the file and the reason."""


@dataclass(frozen=True)
class RasterOutput:
    index: str  # "ndvi" | "evi" | "lai"
    path: Path  # the COG written under out_dir
    stac_path: Path  # the STAC Item JSON beside it
    sha256: str
    clipped: int  # pixels whose value was beyond the int16 range and stored at its limit


@dataclass(frozen=True)
class ImageResult:
    rasters: dict[str, RasterOutput]
    plots: list[PlotStatistics]
    crs: str
    width: int
    height: int
    masked: dict[str, int]  # whole-image pixels per mask reason


@dataclass(frozen=True)
class BandLayout:
    """Which 1-based band of the file plays each role, and how its numbers become reflectance."""

    bands: dict[str, int]  # red, nir, blue -> 1-based band index
    calibration: dict[str, BandCalibration]
    qa_band: int | None
    qa_kind: str | None
    file_mask: bool  # GDAL per-dataset mask or alpha band marks nodata


def _normal(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _lower_keys(tags: dict) -> dict[str, str]:
    return {key.lower(): value for key, value in tags.items()}


def _wavelength_role(value: str, where: str, image: Path) -> str | None:
    try:
        wavelength = float(value)
    except ValueError:
        raise ImageryError(f"{image}: {where} wavelength {value!r} is not a number") from None
    if wavelength < 10:  # micrometres
        wavelength *= 1000
    return next((role for role, low, high in _WAVELENGTHS_NM if low <= wavelength < high), "other")


def identify_bands(src, image: Path) -> BandLayout:
    """Each needed band's index and calibration, from the file's metadata (see module docstring)."""
    from rasterio.enums import ColorInterp, MaskFlags

    colorinterp = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue", ColorInterp.nir: "nir"}
    file_tags = _lower_keys(src.tags())
    listed = next((file_tags[key] for key in ("bands", "band_names") if key in file_tags), None)
    listed_names = [part.strip() for part in listed.split(",")] if listed else None
    if listed_names is not None and len(listed_names) != src.count:
        raise ImageryError(f"{image}: its BANDS tag lists {len(listed_names)} bands but the file has {src.count}")
    strong: dict[int, str] = {}
    weak: dict[int, str] = {}
    labels: dict[int, str] = {}
    for number in range(1, src.count + 1):
        tags = _lower_keys(src.tags(number))
        names = [src.descriptions[number - 1]] + [tags.get(key) for key in _NAME_TAGS]
        if listed_names:
            names.append(listed_names[number - 1])
        names = [name for name in names if name]
        labels[number] = f"band {number}" + (f" {names[0]!r}" if names else "")
        by_name = {_NAMES[_normal(name)] for name in names if _normal(name) in _NAMES}
        if len(by_name) > 1:
            raise ImageryError(f"{image}: {labels[number]} has contradictory names {names}")
        imagery_tags = _lower_keys(src.tags(number, ns="IMAGERY"))
        wavelengths = [tags[key] for key in _WAVELENGTH_TAGS if key in tags]
        if "central_wavelength_um" in imagery_tags:
            wavelengths.append(imagery_tags["central_wavelength_um"])
        by_wavelength = {_wavelength_role(value, labels[number], image) for value in wavelengths}
        if len(by_wavelength) > 1:
            raise ImageryError(f"{image}: {labels[number]} has contradictory wavelengths {wavelengths}")
        role = next(iter(by_name), None)
        if by_wavelength and role and not role.startswith("qa:") and role not in by_wavelength:
            raise ImageryError(  # the number as parsed: float() takes white space (a newline) around it
                f"{image}: {labels[number]} is named {role} "
                f"but its wavelength {wavelengths[0].strip()} is {by_wavelength.pop()}"
            )
        role = role or next(iter(by_wavelength), None)
        if role:
            strong[number] = role
        elif src.colorinterp[number - 1] in colorinterp:
            weak[number] = colorinterp[src.colorinterp[number - 1]]

    roles: dict[str, int] = {}
    for number, role in strong.items():
        if role == "other":
            continue
        if role in roles:
            raise ImageryError(f"{image}: {labels[roles[role]]} and {labels[number]} are both identified as {role}")
        roles[role] = number
    claimed_weakly = [role for role in weak.values()]
    for number, role in weak.items():
        if role not in roles and claimed_weakly.count(role) == 1:
            roles[role] = number
    missing = [role for role in BANDS if role not in roles]
    if missing:
        described = ", ".join(labels.values())
        raise ImageryError(
            f"{image}: cannot identify the {', '.join(missing)} band(s) by description, tags or wavelength "
            f"(bands: {described}); red, nir and blue are needed"
        )
    qa_roles = [role for role in roles if role.startswith("qa:")]
    if len(qa_roles) > 1:
        raise ImageryError(f"{image}: several mask/QA bands: {', '.join(labels[roles[r]] for r in qa_roles)}")
    bands = {role: roles[role] for role in BANDS}  # only the needed bands must be calibrated
    calibration = {role: _calibration(src, number, labels[number], file_tags, image) for role, number in bands.items()}
    flags = [src.mask_flag_enums[number - 1] for number in bands.values()]
    file_mask = any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags)
    qa_band = roles[qa_roles[0]] if qa_roles else None
    return BandLayout(bands, calibration, qa_band, qa_roles[0][3:] if qa_roles else None, file_mask)


def _tag_number(tags: dict[str, str], keys: Sequence[str], where: str, image: Path) -> float | None:
    for key in keys:
        if key in tags:
            try:
                return float(tags[key])
            except ValueError:
                raise ImageryError(f"{image}: {where} tag {key.upper()}={tags[key]!r} is not a number") from None
    return None


def _calibration(src, number: int, label: str, file_tags: dict[str, str], image: Path) -> BandCalibration:
    scale, offset = src.scales[number - 1], src.offsets[number - 1]
    if (scale, offset) == (1.0, 0.0):  # GDAL's "unset": look for tags
        band_tags = _lower_keys(src.tags(number))
        found_scale = _tag_number(band_tags, _SCALE_TAGS, label, image)
        found_offset = _tag_number(band_tags, _OFFSET_TAGS, label, image)
        if found_scale is None and found_offset is None:
            found_scale = _tag_number(file_tags, _SCALE_TAGS, "file", image)
            found_offset = _tag_number(file_tags, _OFFSET_TAGS, "file", image)
        dtype = np.dtype(src.dtypes[number - 1])
        if found_scale is None and found_offset is None and dtype.kind in "ui":
            raise ImageryError(
                f"{image}: {label} holds integer digital numbers ({dtype}) but states no scale or offset "
                "(GDAL scale/offset or SCALE/OFFSET tags), so its reflectance is unknown"
            )
        scale = 1.0 if found_scale is None else found_scale
        offset = 0.0 if found_offset is None else found_offset
    if not (math.isfinite(scale) and math.isfinite(offset)) or scale == 0:
        raise ImageryError(f"{image}: {label} has an unusable scale {scale} / offset {offset}")
    nodata = src.nodatavals[number - 1]
    return BandCalibration(scale, offset, nodata, saturation_value(src.dtypes[number - 1]))


def _capture_time(src, image: Path) -> dt.datetime:
    tags = _lower_keys(src.tags())
    for key in _TIME_TAGS:
        if key in tags:
            text = tags[key].strip()
            if key == "tifftag_datetime":  # "YYYY:MM:DD HH:MM:SS"
                text = text.replace(":", "-", 2)
            try:
                when = dt.datetime.fromisoformat(text)
            except ValueError:
                raise ImageryError(f"{image}: capture time tag {key.upper()}={tags[key]!r} is not a date") from None
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    raise ImageryError(f"{image}: no capture time in its tags ({', '.join(k.upper() for k in _TIME_TAGS)}); pass it")


class _PlotWindow:
    """A plot's pixels: its window on the raster and the polygon mask over it, filled strip by strip."""

    def __init__(self, plot_id: str, geometry: dict, src, to_raster):
        import shapely
        import shapely.affinity
        from rasterio.features import geometry_mask
        from rasterio.windows import Window
        from shapely.geometry import shape

        self.plot_id = plot_id
        try:
            # to_raster: pyproj's transform, arrays of x and y in, arrays out
            polygon = shapely.transform(shape(geometry), lambda xy: np.column_stack(to_raster(xy[:, 0], xy[:, 1])))
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"plot {plot_id!r}: unusable geometry: {error}") from None
        if polygon.is_empty or not polygon.is_valid:
            raise ValueError(f"plot {plot_id!r}: geometry is empty or invalid in {src.crs}")
        inverse = ~src.transform
        xs, ys = zip(*[inverse @ corner for corner in _corners(polygon.bounds)], strict=True)
        full = Window.from_slices(
            (math.floor(min(ys)), math.ceil(max(ys))), (math.floor(min(xs)), math.ceil(max(xs))), boundless=True
        )
        col0, col1 = max(0, full.col_off), min(src.width, full.col_off + full.width)
        row0, row1 = max(0, full.row_off), min(src.height, full.row_off + full.height)
        self.window = Window(col0, row0, max(0, col1 - col0), max(0, row1 - row0))
        self.inside = None
        self.uncovered = 0  # polygon pixels (on the image's grid) beyond the image's edge
        if self.window.width and self.window.height:
            self.inside = geometry_mask(
                [polygon],
                (self.window.height, self.window.width),
                window_transform(self.window, src.transform),
                invert=True,
            )
            if (full.width, full.height) != (self.window.width, self.window.height):
                outline = shapely.affinity.affine_transform(polygon, inverse.to_shapely())
                shapely.prepare(outline)  # many predicates on it follow
                self.uncovered = _pixels_in(polygon, outline, full, src.transform) - int(self.inside.sum())
            shape2 = self.inside.shape
            self.indices = Indices(
                np.full(shape2, np.nan, np.float32),
                np.full(shape2, np.nan, np.float32),
                np.full(shape2, np.nan, np.float32),
                np.zeros(shape2, np.uint8),
            )

    def take(self, window: Window, block: Indices) -> None:
        """Copy the part of a processed block (at `window` on the raster) that falls in this plot's window."""
        if self.inside is None:
            return
        mine = self.window
        top, bottom = max(window.row_off, mine.row_off), min(window.row_off + window.height, mine.row_off + mine.height)
        left, right = max(window.col_off, mine.col_off), min(window.col_off + window.width, mine.col_off + mine.width)
        if top >= bottom or left >= right:
            return
        target = (slice(top - mine.row_off, bottom - mine.row_off), slice(left - mine.col_off, right - mine.col_off))
        source = (
            slice(top - window.row_off, bottom - window.row_off),
            slice(left - window.col_off, right - window.col_off),
        )
        for name in ("ndvi", "evi", "lai", "reason"):
            getattr(self.indices, name)[target] = getattr(block, name)[source]

    def statistics(self, params: VegetationParams) -> PlotStatistics:
        if self.inside is None or not self.inside.any():
            return empty_plot_statistics(self.plot_id)
        return plot_statistics(self.plot_id, self.indices, self.inside, params.min_valid_fraction, self.uncovered)


class _BlockBuffers:
    """Arrays reused from block to block (each block's results are written and copied before the next)."""

    def __init__(self, pixels: int, band_dtype: str):
        self._bands = np.empty(len(BANDS) * pixels, band_dtype)
        self._outputs = [np.empty(pixels, dtype) for dtype in (np.float32, np.float32, np.float32, np.uint8)]
        self._stored = np.empty(pixels, np.int16)

    def bands(self, window: Window) -> np.ndarray:
        return self._bands[: len(BANDS) * window.height * window.width].reshape(len(BANDS), window.height, window.width)

    def indices(self, window: Window) -> Indices:
        size, shape = window.height * window.width, (window.height, window.width)
        return Indices(*(array[:size].reshape(shape) for array in self._outputs))

    def stored(self, window: Window) -> np.ndarray:
        """The int16 block of one index (written to its file before the next index reuses it)."""
        return self._stored[: window.height * window.width].reshape(window.height, window.width)


def window_transform(window: Window, transform: Affine) -> Affine:
    """The transform of `window` of a grid (rasterio's own spells it with the deprecated `Affine * tuple`)."""
    return transform @ Affine.translation(window.col_off, window.row_off)


def _pixels_in(polygon, outline, window: Window, transform) -> int:
    """Pixel centres in `polygon` over `window` of the image's grid (`transform`), a window that may
    reach far beyond the image, with memory bounded by MASK_TILE_PIXELS whatever its size: a part
    wholly inside or outside the polygon is counted from its box, a part on the boundary is halved
    until it is small enough to rasterise. `outline`: the polygon in (column, row) pixel coordinates,
    where each part is a box (right for any affine grid, rotated ones too)."""
    import shapely
    from rasterio.features import geometry_mask
    from rasterio.windows import Window

    col, row, width, height = window.col_off, window.row_off, window.width, window.height
    part = shapely.box(col, row, col + width, row + height)
    if shapely.contains_properly(outline, part):  # every centre is inside: no tie on the boundary
        return width * height
    if not shapely.intersects(outline, part):
        return 0
    if width * height <= MASK_TILE_PIXELS:
        mask = geometry_mask([polygon], (height, width), window_transform(window, transform), invert=True)
        return int(mask.sum())
    if width >= height:
        halves = (Window(col, row, width // 2, height), Window(col + width // 2, row, width - width // 2, height))
    else:
        halves = (Window(col, row, width, height // 2), Window(col, row + height // 2, width, height - height // 2))
    return sum(_pixels_in(polygon, outline, part, transform) for part in halves)


def _describe(window: Window) -> str:
    rows = f"{window.row_off}-{window.row_off + window.height - 1}"
    return f"rows {rows}, columns {window.col_off}-{window.col_off + window.width - 1}"


def _not_finite(block: Indices) -> int:
    """Pixels the kernel counts valid whose NDVI is not a finite number, or whose EVI or LAI is infinite
    (EVI is NaN where its denominator is 0): absurd scales/offsets or infinite values in a float band.
    (A masked pixel's NDVI is NaN.)"""
    problems = ~np.isfinite(block.ndvi) | np.isinf(block.evi) | np.isinf(block.lai)
    return int(np.count_nonzero(problems)) - sum(block.counts.values())


def _scales(layout: BandLayout) -> str:
    return ", ".join(f"{role} scale {c.scale} / offset {c.offset}" for role, c in layout.calibration.items())


def _corners(bounds: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = bounds
    return [(x0, y0), (x0, y1), (x1, y0), (x1, y1)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _undecodable_gdal_messages_dropped() -> Iterator[None]:
    """rasterio decodes each GDAL message as UTF-8 in a C callback (rasterio issue 3128): a message quoting
    a corrupt file's bytes (its GDAL metadata XML, say) fails there, and Python prints that failure on
    stderr, a line through sys.excepthook and an "Exception ignored" traceback through sys.unraisablehook,
    while the file goes on to be refused or read as usual. While an image is read those two are dropped;
    anything else reaches the hooks as before."""
    excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

    def on_exception(kind, value, traceback) -> None:
        if not isinstance(value, UnicodeDecodeError):
            excepthook(kind, value, traceback)

    def on_unraisable(report) -> None:
        if not (isinstance(report.exc_value, UnicodeDecodeError) and str(report.object).startswith("rasterio.")):
            unraisablehook(report)

    sys.excepthook, sys.unraisablehook = on_exception, on_unraisable
    try:
        yield
    finally:
        sys.excepthook, sys.unraisablehook = excepthook, unraisablehook


def _open(image: Path):
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():  # refused below in one line: no warning lines before it (issue 17)
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(image)
    except RasterioError as error:
        raise ImageryError(f"{image}: not a readable GeoTIFF: {error}") from None
    if src.driver != "GTiff":
        src.close()
        raise ImageryError(f"{image}: not a GeoTIFF (GDAL reads it as {src.driver})")
    if src.crs is None or src.transform.is_identity:
        src.close()
        raise ImageryError(f"{image}: not georeferenced (no CRS or geotransform), so plots cannot be placed on it")
    if src.dtypes[0] not in _REAL_SAMPLES:  # complex ones: numpy or numba fail on them
        src.close()
        raise ImageryError(f"{image}: its pixels are {src.dtypes[0]}, not real numbers (integer or floating point)")
    # the header alone says how much work the file asks for: refuse before reading any pixel
    max_pixels = settings.env_int("MICROCROP_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)
    max_bands = settings.env_int("MICROCROP_MAX_IMAGE_BANDS", DEFAULT_MAX_IMAGE_BANDS)
    width, height, count = src.width, src.height, src.count
    if width * height > max_pixels or count > max_bands:
        src.close()
        if count > max_bands:
            raise ImageryError(
                f"{image}: its header claims {count} bands, more than MICROCROP_MAX_IMAGE_BANDS={max_bands}"
            )
        raise ImageryError(
            f"{image}: its header claims {width} x {height} = {width * height} pixels, "
            f"more than MICROCROP_MAX_IMAGE_PIXELS={max_pixels}"
        )
    return src


def process_image(
    image: Path,
    plots: Sequence[tuple[str, dict]],
    out_dir: Path,
    *,
    item_id: str,
    captured_at: dt.datetime | None = None,
    params: VegetationParams = VegetationParams(),
) -> ImageResult:
    """NDVI, EVI and LAI COGs (+ STAC Items) of `image` in `out_dir`, and each plot's statistics.

    `plots`: (plot_id, GeoJSON geometry in EPSG:4326) pairs; plots the image does not cover come
    back with pixels=0, valid_fraction=0 and None statistics. Raises ImageryError for an unusable
    image (corrupt, truncated, not a GeoTIFF, bands not identifiable), ValueError naming a plot
    whose geometry is unusable.
    """
    import rasterio
    from pyproj import Transformer

    image, out_dir = Path(image), Path(out_dir)
    if not _ITEM_ID.match(item_id):
        raise ValueError(f"item_id {item_id!r} must be 1-128 letters, digits, '.', '_' or '-'")
    if params.block_rows < 1 or params.block_cols < 1:
        raise ValueError(f"block_rows and block_cols must be positive, not {params.block_rows}, {params.block_cols}")
    with (
        _undecodable_gdal_messages_dropped(),
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES, GDAL_NUM_THREADS="ALL_CPUS"),
        _open(image) as src,
    ):
        layout = identify_bands(src, image)
        captured_at = captured_at or _capture_time(src, image)
        if captured_at.tzinfo is None:
            captured_at = captured_at.replace(tzinfo=dt.UTC)
        to_raster = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform
        windows = [_PlotWindow(plot_id, geometry, src, to_raster) for plot_id, geometry in plots]
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".partial-") as work:
            work = Path(work)
            masked, clipped = _compute(src, image, layout, params, work, windows)
            built = {index: _build(work, item_id, index, image, captured_at, clipped[index]) for index in INDICES}
            rasters = {index: _move(output, out_dir) for index, output in built.items()}  # all six or none
        return ImageResult(
            rasters=rasters,
            plots=[window.statistics(params) for window in windows],
            crs=src.crs.to_string(),
            width=src.width,
            height=src.height,
            masked=masked,
        )


def _compute(
    src, image: Path, layout: BandLayout, params: VegetationParams, work: Path, windows
) -> tuple[dict[str, int], dict[str, int]]:
    """Strip by strip: read, compute, write the plain tiled int16 intermediates, collect plot pixels.
    The pixels masked per reason, and the pixels clipped per index."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff",
        "width": src.width,
        "height": src.height,
        "count": 1,
        "dtype": "int16",
        "nodata": INT16_NODATA,
        "crs": src.crs,
        "transform": src.transform,
        "tiled": True,
        "blockxsize": COG_BLOCK,
        "blockysize": COG_BLOCK,
        "BIGTIFF": "IF_SAFER",
    }
    masked = dict.fromkeys(REASONS, 0)
    clipped = dict.fromkeys(INDICES, 0)
    needed = [layout.bands[role] for role in BANDS]
    outputs = {index: rasterio.open(work / f"{index}.tif", "w", **profile) for index in INDICES}
    try:
        for index, dst in outputs.items():
            dst.set_band_description(1, index)
            dst.update_tags(INDEX=index, FORMULA=_FORMULAS[index], SOURCE_IMAGE=image.name)
            dst.scales, dst.offsets = [1 / STORED_FACTORS[index]], [0.0]
        blocks = (
            Window(col0, row0, min(params.block_cols, src.width - col0), min(params.block_rows, src.height - row0))
            for row0 in range(0, src.height, params.block_rows)
            for col0 in range(0, src.width, params.block_cols)
        )
        buffers = _BlockBuffers(min(params.block_rows, src.height) * min(params.block_cols, src.width), src.dtypes[0])
        for window in blocks:
            try:
                red, nir, blue = src.read(needed, window=window, out=buffers.bands(window))
                valid = src.read_masks(layout.bands["red"], window=window) if layout.file_mask else None
                qa = src.read(layout.qa_band, window=window) if layout.qa_band else None
            except RasterioError as error:
                detail = error.__cause__ or error  # GDAL's own message ("TIFFReadEncodedTile() failed")
                raise ImageryError(f"{image}: corrupt or truncated, {_describe(window)} unreadable: {detail}") from None
            block = vegetation_indices(
                red,
                nir,
                blue,
                layout.calibration,
                params,
                valid=valid,
                qa=None if qa is None else qa_codes(layout.qa_kind, qa),
                out=buffers.indices(window),
            )
            unusable = _not_finite(block)
            if unusable:
                raise ImageryError(
                    f"{image}: {_describe(window)}: reflectance (value x scale + offset) infinite or beyond the "
                    f"floating-point range at {unusable} pixel(s) ({_scales(layout)})"
                )
            for index, dst in outputs.items():
                stored = buffers.stored(window)
                clipped[index] += quantize(getattr(block, index), STORED_FACTORS[index], stored)
                dst.write(stored, 1, window=window)
            for name, count in block.counts.items():
                masked[name] += count
            for plot in windows:
                plot.take(window, block)
        # overviews on the uncompressed intermediate, then compressed once by the COG copy: about half the
        # time of letting the COG driver build them (it compresses, re-reads and copies a temporary file)
        factors = overview_factors(src.width, src.height)
        for index, dst in outputs.items():
            dst.update_tags(CLIPPED_PIXELS=clipped[index])
            if factors:
                dst.build_overviews(factors, Resampling.average)
    finally:
        for dst in outputs.values():
            dst.close()
    return masked, clipped


def overview_factors(width: int, height: int) -> list[int]:
    """Halvings until the image fits one COG block (what GDAL's COG driver does with OVERVIEWS=AUTO)."""
    factors, factor = [], 1
    while math.ceil(max(width, height) / factor) > COG_BLOCK:
        factor *= 2
        factors.append(factor)
    return factors


def _build(work: Path, item_id: str, index: str, image: Path, captured_at: dt.datetime, clipped: int) -> RasterOutput:
    """The COG and its STAC Item, built in `work`."""
    import pystac
    import rasterio.shutil
    from rio_stac import create_stac_item

    name = f"{item_id}_{index}"
    cog, item_json = work / f"{name}.tif", work / f"{name}.json"
    rasterio.shutil.copy(
        work / f"{index}.tif",
        cog,
        driver="COG",
        BLOCKSIZE=COG_BLOCK,
        COMPRESS="ZSTD",
        LEVEL=1,  # compression, not arithmetic, dominates end-to-end time (science.md); 1 is ZSTD's fast end
        PREDICTOR=2,  # horizontal differencing, the integer predictor (3 is for floating point)
        OVERVIEWS="FORCE_USE_EXISTING",
        NUM_THREADS="ALL_CPUS",
        BIGTIFF="IF_SAFER",
    )
    item = create_stac_item(
        str(cog),
        input_datetime=captured_at,
        id=f"{item_id}-{index}",
        asset_name=index,
        asset_href=f"./{cog.name}",
        asset_roles=["data"],
        asset_media_type=pystac.MediaType.COG,
        with_proj=True,
        with_raster=True,
        properties={
            "microcrop:index": index,
            "microcrop:formula": _FORMULAS[index],
            "microcrop:source": image.name,
            "microcrop:clipped_pixels": clipped,
        },
    )
    item.save_object(include_self_link=False, dest_href=str(item_json))
    return RasterOutput(index, cog, item_json, _sha256(cog), clipped)


def _move(output: RasterOutput, out_dir: Path) -> RasterOutput:
    """A built COG and its STAC Item renamed into `out_dir` (same filesystem: each rename is atomic)."""
    final_cog, final_json = out_dir / output.path.name, out_dir / output.stac_path.name
    os.replace(output.path, final_cog)
    os.replace(output.stac_path, final_json)
    return replace(output, path=final_cog, stac_path=final_json)
