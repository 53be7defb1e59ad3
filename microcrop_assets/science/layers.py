"""Stress layers: an index against a trigger and an exit, and their weighted combination (science.md 3).

One formula covers both directions: f = clip((trigger - x) / (trigger - exit), 0, 1). With trigger > exit
(rain, NDVI) it is the deficit layer (T - x) / (T - E); with trigger < exit (excess rain, heat days) the
same expression equals the excess layer (x - T) / (E - T).
"""

from collections.abc import Mapping

import numpy as np
import pandas as pd


def _float_array(value, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number") from None


def _like_input(result: np.ndarray, x):
    if isinstance(x, pd.Series):
        return pd.Series(result, index=x.index, name=x.name)
    return float(result) if result.ndim == 0 else result


def layer_fraction(x, trigger, exit):
    """Share of the layer between trigger (0) and exit (1) reached by the index `x`.

    `x` may be a scalar, a numpy array or a pandas Series (returned as the same kind, Series keep
    their index); trigger and exit may be scalars (Decimal too) or arrays broadcasting against x, e.g.
    one per plot. NaN x gives NaN. trigger == exit is a ValueError naming both.
    """
    t = _float_array(trigger, "trigger")
    e = _float_array(exit, "exit")
    t, e = np.broadcast_arrays(t, e)
    same = t == e
    if same.any():
        where = "" if same.ndim == 0 else f" at position {np.argwhere(same)[0].tolist()}"
        raise ValueError(
            f"layer trigger {float(t[same][0])} equals exit {float(e[same][0])}{where}: the layer has no width"
        )
    values = _float_array(x.to_numpy(dtype=float, na_value=np.nan) if isinstance(x, pd.Series) else x, "x")
    # + 0.0 turns -0.0 into 0.0, so canonical JSON of a layer never reads "-0.0"
    return _like_input(np.clip((t - values) / (t - e), 0.0, 1.0) + 0.0, x)


def combine_stress(layers: Mapping[str, object], weights: Mapping[str, float], cap: float = 1.0):
    """min(cap, sum of weight x layer) over the named layers (each 0..1, arrays broadcast together).

    NaN handling: a layer that is NaN (not computed, e.g. failed the completeness gate) makes the result
    NaN (the assessment then has no weather stress and says why), except where the layers that are
    present already reach the cap: layers are never negative, so the missing ones could not change it.
    A layer with weight 0 is ignored, NaN or not. Every layer needs a weight and every weight a layer.
    """
    if set(layers) != set(weights):
        raise ValueError(f"layers {sorted(layers)} and weights {sorted(weights)} must name the same layers")
    cap = float(cap)
    if not cap > 0:
        raise ValueError(f"cap={cap!r} must be > 0")
    total = np.asarray(0.0)
    incomplete = np.asarray(False)
    for name in sorted(layers):
        weight = float(weights[name])
        if weight < 0:
            raise ValueError(f"weight of layer {name!r} is {weight}; weights must be >= 0")
        if weight == 0:
            continue
        layer = layers[name]
        values = _float_array(
            layer.to_numpy(dtype=float, na_value=np.nan) if isinstance(layer, pd.Series) else layer, name
        )
        outside = (values < 0) | (values > 1)
        if outside.any():
            raise ValueError(f"layer {name!r} has values outside 0..1, e.g. {values[outside].flat[0]}")
        missing = np.isnan(values)
        total = total + np.where(missing, 0.0, weight * values)
        incomplete = incomplete | missing
    combined = np.where(incomplete & (total < cap), np.nan, np.minimum(total, cap))
    first = next(iter(layers.values()), None)
    return _like_input(combined, first)
