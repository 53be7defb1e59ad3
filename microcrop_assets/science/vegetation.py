"""Vegetation from imagery (science.md section 4): reflectance, masks, NDVI / EVI / LAI, plot statistics.

Pure functions over arrays (no file I/O); `microcrop_assets/defs/imagery/rasters.py` feeds them blocks of
a raster.

- Reflectance: each band's digital numbers become reflectance with that band's own scale and offset,
  `DN x scale + offset`, in float64 (skipping the offset biases NDVI).
- Masks: every pixel gets one reason code, the first that applies in this order: nodata (the band's
  nodata value, NaN, or the file's own mask/alpha band), saturated (a needed band at its integer data
  type's maximum), zero_sum (N + R = 0: nodata, not a division error), cloud, shadow. The counts per
  reason therefore add up to the masked pixels.
- Cloud and shadow: from the file's QA or cloud-mask band when it has one (decoded by `qa_codes`),
  else a brightness test on reflectance:
  cloud when blue > 0.2: vegetation reflects 0.02-0.06 in the blue and dry bare soil rarely above
  0.15, while clouds are bright and white across the visible (>= 0.3); a blue-band brightness test is
  the first cloud test of ACCA (Irish 2000) and of Fmask's potential-cloud tests (Zhu & Woodcock 2012).
  shadow when NIR < 0.04 and red and blue < 0.08: any vegetation, even shaded, keeps NIR above ~0.1,
  so a dark NIR with a dark visible is shadow (Fmask also finds shadows by their low NIR) or water,
  neither of which says anything about the crop. Thresholds are `VegetationParams` fields.
- Indices: NDVI = (N - R) / (N + R); EVI = 2.5 (N - R) / (N + 6R - 7.5B + 1) (NaN where that
  denominator is 0; the pixel still counts for NDVI); LAI = max(3.618 EVI - 0.118, 0) (Boegh 2002;
  empirical, keep it out of triggers). Outputs are float32 with NaN where masked.
- One fused loop (numba `prange`, all cores) computes masks, mask counts and all three indices per
  pixel in one pass over memory: numpy makes a pass per operation (plain NDVI alone ~0.35 Gpx per
  CPU-second here) and numexpr cannot fuse masks, counts and three outputs (~0.64 Gpx/s for NDVI
  alone, science.md). numba (NumFOCUS, already in the lock through xclim) was the well-kept choice.
  Measured by `./dev bench ndvi`: ~0.5 Gpx per CPU-second for the whole job (uint16 in, 3 float32 +
  1 uint8 out: 19 bytes per pixel, against 12 for NDVI from float reflectance). Every pixel is
  computed independently of the others, so a raster processed block by block is bitwise identical
  to the whole array at once.
- Stored rasters: int16 with a per-index factor (`STORED_FACTORS`), nodata -32768 (`quantize`); the
  indices and plot statistics above stay float32 in memory, never read back from the stored integers.
"""

from dataclasses import dataclass, field

import numpy as np

REASONS = ("nodata", "saturated", "zero_sum", "cloud", "shadow")
VALID, NODATA, SATURATED, ZERO_SUM, CLOUD, SHADOW = range(6)
BANDS = ("red", "nir", "blue")  # the bands the indices need, in the kernel's argument order
QA_KINDS = ("scl", "landsat_qa", "cloud_mask")


@dataclass(frozen=True)
class VegetationParams:
    cloud_blue: float = 0.2  # blue reflectance above which a pixel is cloud (no QA band)
    shadow_nir: float = 0.04  # NIR reflectance below which, with a dark visible, a pixel is shadow
    shadow_visible: float = 0.08  # red and blue reflectance below which the visible is dark
    # the raster is processed in blocks of block_rows x block_cols pixels (multiples of the 512 px COG
    # blocks): ~4 Mpx, so memory stays bounded however large the raster
    block_rows: int = 512
    block_cols: int = 8192
    min_valid_fraction: float = 0.5  # a plot's image below this valid-pixel share does not count


@dataclass(frozen=True)
class BandCalibration:
    """How one band's digital numbers become reflectance, and which of them are not data."""

    scale: float
    offset: float
    nodata: float | None = None  # the band's nodata value (NaN is always nodata)
    saturation: float | None = None  # the integer data type's maximum (None for float bands)


@dataclass
class Indices:
    """One block's (or a whole raster's) indices and per-pixel mask reason."""

    ndvi: np.ndarray
    evi: np.ndarray
    lai: np.ndarray
    reason: np.ndarray  # uint8: VALID or the first mask reason (see REASONS)
    counts: dict[str, int] = field(default_factory=dict)  # masked pixels per reason


def saturation_value(dtype: np.dtype) -> float | None:
    """The integer data type's maximum (what a saturated sensor records); None for float data."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else None


def qa_codes(kind: str, qa: np.ndarray) -> np.ndarray:
    """A QA / mask band as uint8 reason codes (VALID, NODATA, CLOUD or SHADOW).

    - scl (Sentinel-2 L2A scene classification): 0 no data, 1 saturated or defective -> nodata;
      3 cloud shadow -> shadow; 8, 9 cloud medium/high probability, 10 thin cirrus -> cloud.
    - landsat_qa (Landsat Collection 2 QA_PIXEL bits): bit 0 fill -> nodata; bit 1 dilated cloud,
      bit 2 cirrus, bit 3 cloud -> cloud; bit 4 cloud shadow -> shadow.
    - cloud_mask (a generic mask band): 0 clear, 2 shadow, any other value cloud.
    """
    codes = np.zeros(qa.shape, np.uint8)
    if kind == "scl":
        codes[np.isin(qa, (0, 1))] = NODATA
        codes[qa == 3] = SHADOW
        codes[np.isin(qa, (8, 9, 10))] = CLOUD
    elif kind == "landsat_qa":
        bits = qa.astype(np.uint32)
        codes[(bits & (1 << 4)) != 0] = SHADOW
        codes[(bits & 0b1110) != 0] = CLOUD
        codes[(bits & 1) != 0] = NODATA
    elif kind == "cloud_mask":
        codes[qa != 0] = CLOUD
        codes[qa == 2] = SHADOW
    else:
        raise ValueError(f"unknown QA band kind {kind!r} (known: {', '.join(QA_KINDS)})")
    return codes


def _calibration_vectors(calibration: dict[str, BandCalibration]) -> tuple[np.ndarray, ...]:
    bands = [calibration[name] for name in BANDS]
    scale = np.array([b.scale for b in bands], np.float64)
    offset = np.array([b.offset for b in bands], np.float64)
    has_nodata = np.array([b.nodata is not None and not np.isnan(b.nodata) for b in bands])
    nodata = np.array([b.nodata if has_nodata[i] else 0.0 for i, b in enumerate(bands)], np.float64)
    has_saturation = np.array([b.saturation is not None for b in bands])
    saturation = np.array([b.saturation if b.saturation is not None else 0.0 for b in bands], np.float64)
    return scale, offset, has_nodata, nodata, has_saturation, saturation


def vegetation_indices(
    red: np.ndarray,
    nir: np.ndarray,
    blue: np.ndarray,
    calibration: dict[str, BandCalibration],
    params: VegetationParams = VegetationParams(),
    *,
    valid: np.ndarray | None = None,
    qa: np.ndarray | None = None,
    out: Indices | None = None,
) -> Indices:
    """NDVI, EVI, LAI and mask reasons of digital numbers `red`, `nir`, `blue` (2-D, same shape).

    `valid`: the file's own mask (non-zero = data), e.g. GDAL's per-dataset mask or alpha band.
    `qa`: reason codes from `qa_codes`; when given, cloud and shadow come from it instead of the
    brightness test.
    `out`: C-contiguous arrays of the bands' shape to write into (a block loop reuses them: fresh
    arrays cost as much in page faults as the arithmetic).
    """
    shape = red.shape
    if nir.shape != shape or blue.shape != shape:
        raise ValueError(f"band shapes differ: red {shape}, nir {nir.shape}, blue {blue.shape}")
    for name, extra in (("valid", valid), ("qa", qa)):
        if extra is not None and extra.shape != shape:
            raise ValueError(f"{name} mask shape {extra.shape} differs from the bands' {shape}")
    if out is None:
        out = Indices(*(np.empty(shape, dtype) for dtype in (np.float32, np.float32, np.float32, np.uint8)))
    ndvi, evi, lai, reason = out.ndvi, out.evi, out.lai, out.reason
    if any(array.shape != shape or not array.flags.c_contiguous for array in (ndvi, evi, lai, reason)):
        raise ValueError(f"out arrays must be C-contiguous and of the bands' shape {shape}")
    row_counts = np.empty((shape[0], len(REASONS) + 1), np.int64)  # per row: no shared counter between threads
    from microcrop_assets.science.vegetation_kernels import indices_kernel

    indices_kernel(
        red,
        nir,
        blue,
        *_calibration_vectors(calibration),
        None if valid is None else np.ascontiguousarray(valid, dtype=np.uint8),
        None if qa is None else np.ascontiguousarray(qa, dtype=np.uint8),
        params.cloud_blue,
        params.shadow_nir,
        params.shadow_visible,
        ndvi,
        evi,
        lai,
        reason,
        row_counts,
    )
    totals = row_counts.sum(axis=0)
    out.counts = {name: int(totals[code]) for code, name in enumerate(REASONS, start=1)}
    return out


def reason_counts(reason: np.ndarray) -> dict[str, int]:
    counts = np.bincount(reason.ravel(), minlength=len(REASONS) + 1)
    return {name: int(counts[code]) for code, name in enumerate(REASONS, start=1)}


# Stored rasters (science.md section 4: "int16 NDVI x 10000 with nodata -32768"): value = integer / factor.
# NDVI and EVI x 10000 (MODIS MOD13 stores both so): -3.2767..3.2767 covers NDVI's -1..1 and EVI's
# -1..1 (MOD13's valid range is -0.2..1) with room to spare. LAI x 1000: 0..32.767, since LAI reaches 3.5 at EVI 1 and
# x 10000 would clip at 3.2767 (EVI 0.94, a dense crop).
STORED_FACTORS = {"ndvi": 10_000, "evi": 10_000, "lai": 1_000}
INT16_NODATA = -32768
INT16_LIMIT = 32767  # the largest magnitude stored; -32768 is nodata


def quantize(values: np.ndarray, factor: int, out: np.ndarray) -> int:
    """`values` x `factor` as int16 into `out`: rounded half to even (numpy's round), NaN -> INT16_NODATA.

    A value that rounds beyond +-INT16_LIMIT is clipped to the limit; the count of clipped pixels is
    returned (only odd reflectances get there: N + R or EVI's denominator near zero). The product is
    computed in float64, exactly for float32 values, so every stored integer is within half a quantum
    (0.5 / factor) of its float32 value.
    """
    if values.shape != out.shape or out.dtype != np.int16 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous int16 array of shape {values.shape}, not {out.dtype} {out.shape}")
    row_clipped = np.empty(values.shape[0], np.int64)
    from microcrop_assets.science.vegetation_kernels import quantize_kernel

    quantize_kernel(values, np.float64(factor), out, row_clipped, INT16_LIMIT, INT16_NODATA)
    return int(row_clipped.sum())


@dataclass(frozen=True)
class PlotStatistics:
    """Section 4 statistics of one plot in one image (None when no valid pixel)."""

    plot_id: str
    ndvi_mean: float | None
    ndvi_median: float | None
    ndvi_p10: float | None
    ndvi_p90: float | None
    evi_mean: float | None
    lai_mean: float | None
    valid_fraction: float  # valid pixels / pixels inside the polygon (0 when none)
    pixels: int  # pixels inside the polygon
    masked: dict[str, int]  # reason -> pixels inside the polygon
    usable: bool  # pixels inside and valid_fraction >= min_valid_fraction: the image counts for the plot


def plot_statistics(
    plot_id: str,
    indices: Indices,
    inside: np.ndarray,
    min_valid_fraction: float = VegetationParams.min_valid_fraction,
    uncovered: int = 0,
) -> PlotStatistics:
    """Statistics of the pixels where `inside` is true (a polygon mask over the same grid as `indices`).

    `uncovered`: the plot's pixels beyond the image's edge, counted as nodata.

    Percentiles: numpy's default linear interpolation between order statistics. Means are float64
    sums of the float32 pixels.
    """
    reason = indices.reason[inside]
    pixels = int(reason.size) + uncovered
    n_valid = int(np.count_nonzero(reason == VALID))
    masked = reason_counts(reason)
    masked["nodata"] += uncovered
    if n_valid == 0:
        return PlotStatistics(plot_id, None, None, None, None, None, None, 0.0, pixels, masked, False)
    selected = inside & (indices.reason == VALID)
    ndvi = indices.ndvi[selected].astype(np.float64)
    p10, median, p90 = np.percentile(ndvi, (10, 50, 90))
    evi, lai = indices.evi[selected], indices.lai[selected]  # float32 copies; means accumulate in float64
    has_evi = bool(np.isfinite(evi).any())
    fraction = n_valid / pixels
    return PlotStatistics(
        plot_id=plot_id,
        ndvi_mean=float(ndvi.mean()),
        ndvi_median=float(median),
        ndvi_p10=float(p10),
        ndvi_p90=float(p90),
        evi_mean=float(np.nanmean(evi, dtype=np.float64)) if has_evi else None,
        lai_mean=float(np.nanmean(lai, dtype=np.float64)) if has_evi else None,
        valid_fraction=fraction,
        pixels=pixels,
        masked=masked,
        usable=fraction >= min_valid_fraction,
    )


def empty_plot_statistics(plot_id: str) -> PlotStatistics:
    """A plot the image does not cover."""
    return PlotStatistics(plot_id, None, None, None, None, None, None, 0.0, 0, dict.fromkeys(REASONS, 0), False)
