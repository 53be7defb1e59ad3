"""Vegetation indices and masks (science.md section 4) against spyndex and plain numpy."""

import numpy as np
import pytest
import spyndex

from microcrop_assets.science.vegetation import (
    BANDS,
    CLOUD,
    INT16_NODATA,
    NODATA,
    REASONS,
    SATURATED,
    SHADOW,
    VALID,
    ZERO_SUM,
    BandCalibration,
    Indices,
    VegetationParams,
    plot_statistics,
    qa_codes,
    quantize,
    saturation_value,
    vegetation_indices,
)

pytestmark = pytest.mark.unit

SCALE, OFFSET = 0.0001, -0.1


def calibration(scale=SCALE, offset=OFFSET, nodata=0, dtype="uint16"):
    return {band: BandCalibration(scale, offset, nodata, saturation_value(dtype)) for band in BANDS}


def random_dns(shape, seed=3):
    """uint16 digital numbers of plausible vegetation/soil reflectance (no cloud, no shadow)."""
    gen = np.random.default_rng(seed)
    red = gen.uniform(0.02, 0.18, shape)
    nir = gen.uniform(0.1, 0.6, shape)
    blue = gen.uniform(0.01, 0.12, shape)
    return [np.round((band - OFFSET) / SCALE).astype(np.uint16) for band in (red, nir, blue)]


def spyndex_indices(red, nir, blue):
    """NDVI and EVI from spyndex on reflectance computed here, independently of the code under test."""
    r, n, b = (dn.astype(np.float64) * SCALE + OFFSET for dn in (red, nir, blue))
    constants = {name: spyndex.constants[name].default for name in ("g", "C1", "C2", "L")}
    ndvi, evi = spyndex.computeIndex(["NDVI", "EVI"], params={"N": n, "R": r, "B": b, **constants})
    return ndvi, evi


def test_science_md_sanity_values():
    # N 0.5, R 0.1, B 0.05 gives NDVI 0.6667, EVI 0.5797 (science.md)
    one = {band: np.array([[value]], np.float32) for band, value in (("red", 0.1), ("nir", 0.5), ("blue", 0.05))}
    result = vegetation_indices(one["red"], one["nir"], one["blue"], calibration(1.0, 0.0, None, "float32"))
    assert result.ndvi[0, 0] == pytest.approx(0.6667, abs=1e-4)
    assert result.evi[0, 0] == pytest.approx(0.5797, abs=1e-4)
    assert result.lai[0, 0] == pytest.approx(3.618 * 0.579710 - 0.118, abs=1e-5)


def test_ndvi_and_evi_equal_spyndex_on_reflectance():
    red, nir, blue = random_dns((300, 257))
    result = vegetation_indices(red, nir, blue, calibration())
    ndvi, evi = spyndex_indices(red, nir, blue)
    assert (result.reason == VALID).all()
    np.testing.assert_allclose(result.ndvi, ndvi, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.evi, evi, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.lai, np.maximum(3.618 * evi - 0.118, 0), rtol=0, atol=1e-5)


def test_offset_is_applied_per_band():
    # the same digital numbers under another scale/offset per band give another NDVI: scale and offset are
    # each band's own, and skipping the offset would be caught here
    red, nir, blue = random_dns((40, 40))
    own = {
        "red": BandCalibration(0.0002, -0.05, 0, 65535.0),
        "nir": BandCalibration(0.0001, 0.01, 0, 65535.0),
        "blue": BandCalibration(0.00005, -0.2, 0, 65535.0),
    }
    result = vegetation_indices(red, nir, blue, own)
    r, n, b = red * 0.0002 - 0.05, nir * 0.0001 + 0.01, blue * 0.00005 - 0.2
    constants = {name: spyndex.constants[name].default for name in ("g", "C1", "C2", "L")}
    ndvi, evi = spyndex.computeIndex(["NDVI", "EVI"], params={"N": n, "R": r, "B": b, **constants})
    valid = result.reason == VALID
    assert valid.all()
    np.testing.assert_allclose(result.ndvi, ndvi, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.evi, evi, rtol=0, atol=1e-6)


@pytest.mark.parametrize("block_rows", [1, 7, 64, 299])
def test_block_by_block_is_bitwise_whole_array(block_rows):
    red, nir, blue = random_dns((300, 123), seed=block_rows)
    red[5:9, 3:30] = 0  # nodata
    nir[50, :] = 65535  # saturated
    blue[100:103, :] = 4000  # cloud (blue 0.3)
    qa = None if block_rows % 2 else qa_codes("cloud_mask", (np.arange(300 * 123) % 5).reshape(300, 123))
    whole = vegetation_indices(red, nir, blue, calibration(), qa=qa)
    parts = [
        vegetation_indices(
            red[r : r + block_rows],
            nir[r : r + block_rows],
            blue[r : r + block_rows],
            calibration(),
            qa=None if qa is None else qa[r : r + block_rows],
        )
        for r in range(0, 300, block_rows)
    ]
    for name in ("ndvi", "evi", "lai", "reason"):
        stitched = np.concatenate([getattr(part, name) for part in parts])
        assert np.array_equal(getattr(whole, name), stitched, equal_nan=True), name
    assert np.isnan(whole.ndvi).sum() == sum(whole.counts.values()) > 0


def test_masks_first_reason_wins_and_counts():
    # columns: valid, nodata in red, nodata + saturated, saturated nir, N + R = 0, cloud, shadow,
    # dark but vegetated (valid: high NIR)
    reflect = {
        "red": [0.05, None, None, 0.05, 0.0, 0.3, 0.02, 0.02],
        "nir": [0.4, 0.4, "max", "max", 0.0, 0.35, 0.02, 0.3],
        "blue": [0.03, 0.03, 0.03, 0.03, 0.03, 0.3, 0.02, 0.01],
    }
    dns = {}
    for band, values in reflect.items():
        row = []
        for value in values:
            if value is None:
                row.append(0)
            elif value == "max":
                row.append(65535)
            else:
                row.append(round((value - OFFSET) / SCALE))
        dns[band] = np.array([row], np.uint16)
    result = vegetation_indices(dns["red"], dns["nir"], dns["blue"], calibration())
    assert result.reason[0].tolist() == [VALID, NODATA, NODATA, SATURATED, ZERO_SUM, CLOUD, SHADOW, VALID]
    assert result.counts == {"nodata": 2, "saturated": 1, "zero_sum": 1, "cloud": 1, "shadow": 1}
    masked = result.reason != VALID
    assert np.isnan(result.ndvi[masked]).all() and np.isnan(result.evi[masked]).all()
    assert np.isfinite(result.ndvi[~masked]).all()


def test_brightness_thresholds_are_parameters():
    red, nir, blue = (np.array([[round((v - OFFSET) / SCALE)]], np.uint16) for v in (0.1, 0.4, 0.25))
    assert vegetation_indices(red, nir, blue, calibration()).reason[0, 0] == CLOUD
    relaxed = VegetationParams(cloud_blue=0.3)
    assert vegetation_indices(red, nir, blue, calibration(), relaxed).reason[0, 0] == VALID


def test_float_bands_nan_and_file_mask_are_nodata():
    red = np.array([[0.1, np.nan, 0.1]], np.float32)
    nir = np.array([[0.5, 0.5, 0.5]], np.float32)
    blue = np.array([[0.05, 0.05, 0.05]], np.float32)
    valid = np.array([[255, 255, 0]], np.uint8)
    result = vegetation_indices(red, nir, blue, calibration(1.0, 0.0, None, "float32"), valid=valid)
    assert result.reason[0].tolist() == [VALID, NODATA, NODATA]
    assert saturation_value(np.float32) is None


def test_qa_band_replaces_the_brightness_test():
    red, nir, blue = random_dns((1, 6))
    blue[0, 0] = 4000  # bright blue, but the QA band says clear: the QA band rules
    scl = np.array([[4, 3, 8, 9, 10, 0]], np.uint8)
    result = vegetation_indices(red, nir, blue, calibration(), qa=qa_codes("scl", scl))
    assert result.reason[0].tolist() == [VALID, SHADOW, CLOUD, CLOUD, CLOUD, NODATA]
    landsat = np.array([[0b1000000, 1 << 4, 1 << 3, 1 << 1, 1 << 2, 1]], np.uint16)
    assert qa_codes("landsat_qa", landsat)[0].tolist() == [VALID, SHADOW, CLOUD, CLOUD, CLOUD, NODATA]
    assert qa_codes("cloud_mask", np.array([[0, 1, 2, 255]]))[0].tolist() == [VALID, CLOUD, SHADOW, CLOUD]
    with pytest.raises(ValueError, match="unknown QA band kind 'fmask'"):
        qa_codes("fmask", scl)


def test_plot_statistics_of_the_masked_pixels():
    gen = np.random.default_rng(11)
    ndvi = gen.uniform(-0.1, 0.9, (20, 30)).astype(np.float32)
    evi = (ndvi * 0.8).astype(np.float32)
    lai = np.maximum(3.618 * evi - 0.118, 0).astype(np.float32)
    reason = np.zeros((20, 30), np.uint8)
    reason[:5, :] = CLOUD
    reason[5, :4] = SATURATED
    for array in (ndvi, evi, lai):
        array[reason != VALID] = np.nan
    inside = np.zeros((20, 30), bool)
    inside[2:18, 1:25] = True
    stats = plot_statistics("plot-a", Indices(ndvi, evi, lai, reason), inside, min_valid_fraction=0.75)
    values = ndvi[inside & (reason == VALID)].astype(np.float64)
    assert stats.pixels == 16 * 24
    assert stats.masked == {"nodata": 0, "saturated": 3, "zero_sum": 0, "cloud": 3 * 24, "shadow": 0}
    assert stats.valid_fraction == values.size / stats.pixels
    assert stats.ndvi_mean == pytest.approx(values.mean(), abs=1e-12)
    assert stats.ndvi_median == pytest.approx(np.median(values), abs=1e-12)
    assert stats.ndvi_p10 == pytest.approx(np.quantile(values, 0.1), abs=1e-12)
    assert stats.ndvi_p90 == pytest.approx(np.quantile(values, 0.9), abs=1e-12)
    assert stats.evi_mean == pytest.approx(evi[inside & (reason == VALID)].mean(dtype=np.float64), abs=1e-12)
    assert stats.usable is (stats.valid_fraction >= 0.75) is True
    none = plot_statistics("plot-b", Indices(ndvi, evi, lai, reason), reason == CLOUD)
    assert (none.ndvi_mean, none.valid_fraction, none.usable) == (None, 0.0, False)
    assert set(none.masked) == set(REASONS)


def test_quantize_rounds_half_to_even_and_nan_is_nodata():
    # 1/32 and 3/32 are exact in binary, so x 10000 lands exactly on a half: 312.5 and 937.5
    values = np.array([[0.03125, 0.09375, -0.03125, -0.09375, np.nan, 0.0, 0.66666, -1.0]], np.float32)
    out = np.empty(values.shape, np.int16)
    assert quantize(values, 10_000, out) == 0
    assert out.tolist() == [[312, 938, -312, -938, INT16_NODATA, 0, 6667, -10000]]


def test_quantize_is_within_half_a_quantum_of_the_float32_values():
    values = np.random.default_rng(4).uniform(-1.5, 1.5, (200, 300)).astype(np.float32)
    out = np.empty(values.shape, np.int16)
    quantize(values, 10_000, out)
    assert np.abs(out.astype(np.float64) - values.astype(np.float64) * 10_000).max() <= 0.5


def test_quantize_clips_beyond_the_int16_range_and_counts():
    # 3.2767 x 10000 rounds to 32767, the limit: stored, not clipped; NaN is nodata, not clipped
    values = np.array([[3.2767, 3.27675, -5.0, np.inf, -np.inf, np.nan, 32.7674]], np.float32)
    out = np.empty(values.shape, np.int16)
    assert quantize(values, 10_000, out) == 5
    assert out.tolist() == [[32767, 32767, -32767, 32767, -32767, INT16_NODATA, 32767]]
    assert quantize(values[:, -1:], 1_000, out[:, -1:]) == 0  # 32767.4 at x 1000 (LAI) still fits
    assert out[0, -1] == 32767


def test_quantize_refuses_a_mismatched_output():
    with pytest.raises(ValueError, match=r"out must be a C-contiguous int16 array of shape \(2, 3\), not float32"):
        quantize(np.zeros((2, 3), np.float32), 10_000, np.zeros((2, 3), np.float32))
