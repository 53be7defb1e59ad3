"""The compiled loops behind `science/vegetation.py` (its docstring says why one fused numba loop).

A module of their own so that importing `vegetation` (the definitions do, for `VegetationParams`)
does not import numba: `vegetation_indices` and `quantize` import it when first called. It imports
nothing from `vegetation` (the int16 limits come as arguments), so the two modules make no cycle.
"""

import numba
import numpy as np


# error_model="numpy": a division by zero gives inf/NaN (then masked) instead of a Python check per
# pixel; with no branch left in the inner loop LLVM vectorises it. `valid` / `qa` are None or arrays:
# numba compiles each case apart and prunes the unused reads. No fastmath: NaN tests must hold.
@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def indices_kernel(
    red,
    nir,
    blue,
    scale,
    offset,
    has_nodata,
    nodata,
    has_saturation,
    saturation,
    valid,
    qa,
    cloud_blue,
    shadow_nir,
    shadow_visible,
    ndvi,
    evi,
    lai,
    reason,
    row_counts,
):  # pragma: no cover - compiled by numba; exercised through vegetation_indices
    rows, cols = red.shape
    nan = np.float32(np.nan)
    sr, sn, sb = scale[0], scale[1], scale[2]
    or_, on, ob = offset[0], offset[1], offset[2]
    # a band without nodata / saturation compares against NaN, which nothing equals
    nr = nodata[0] if has_nodata[0] else np.nan
    nn = nodata[1] if has_nodata[1] else np.nan
    nb = nodata[2] if has_nodata[2] else np.nan
    xr = saturation[0] if has_saturation[0] else np.nan
    xn = saturation[1] if has_saturation[1] else np.nan
    xb = saturation[2] if has_saturation[2] else np.nan
    for i in numba.prange(rows):
        c1 = c2 = c3 = c4 = c5 = 0
        for j in range(cols):
            dr = np.float64(red[i, j])
            dn = np.float64(nir[i, j])
            db = np.float64(blue[i, j])
            r = dr * sr + or_
            n = dn * sn + on
            b = db * sb + ob
            # bitwise | and & rather than `or` / `and`: no branch, so the loop vectorises
            is_nodata = (
                (False if valid is None else valid[i, j] == 0)
                | (dr != dr)
                | (dn != dn)
                | (db != db)
                | (dr == nr)
                | (dn == nn)
                | (db == nb)
            )
            is_saturated = (dr == xr) | (dn == xn) | (db == xb)
            shadow = (n < shadow_nir) & (r < shadow_visible) & (b < shadow_visible)
            brightness = 4 if b > cloud_blue else (5 if shadow else 0)
            sky = brightness if qa is None else qa[i, j]
            code = 1 if is_nodata else (2 if is_saturated else (3 if n + r == 0.0 else sky))
            reason[i, j] = code
            c1 += code == 1
            c2 += code == 2
            c3 += code == 3
            c4 += code == 4
            c5 += code == 5
            denominator = n + 6.0 * r - 7.5 * b + 1.0
            e = 2.5 * (n - r) / denominator
            ok = code == 0
            ok_evi = ok & (denominator != 0.0)
            ndvi[i, j] = np.float32((n - r) / (n + r)) if ok else nan
            evi[i, j] = np.float32(e) if ok_evi else nan
            lai[i, j] = np.float32(max(3.618 * e - 0.118, 0.0)) if ok_evi else nan
        row_counts[i, 0] = cols - c1 - c2 - c3 - c4 - c5
        row_counts[i, 1] = c1
        row_counts[i, 2] = c2
        row_counts[i, 3] = c3
        row_counts[i, 4] = c4
        row_counts[i, 5] = c5


@numba.njit(parallel=True, nogil=True, cache=True)
def quantize_kernel(
    values, factor, out, row_clipped, limit, nodata
):  # pragma: no cover - compiled; run through quantize
    rows, cols = values.shape
    for i in numba.prange(rows):
        clipped = 0
        for j in range(cols):
            q = np.rint(np.float64(values[i, j]) * factor)
            high = q > limit
            low = q < -limit
            clipped += high | low
            out[i, j] = nodata if q != q else np.int16(limit if high else (-limit if low else q))
        row_clipped[i] = clipped
