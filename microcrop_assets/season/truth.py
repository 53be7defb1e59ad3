"""What the sandbox knows and the pipeline never sees: each plot's true crop condition.

Basis risk is the gap between what an index pays and what farmers really lost. The sandbox's canopy
condition (sandbox.world.crop_conditions, the same truth its imagery renders) is computed twice per
plot: in the scenario's world and in the same world without the scenario's events (same seed, same
ordinary weather). The true loss of a plot over the season window is the share of its normal canopy
that the events took away:

    shortfall = 1 - sum(condition with events) / sum(condition without events)

A plot has a true loss when its shortfall is at least TRUE_LOSS_SHORTFALL (10 %).
"""

import dataclasses
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from microcrop_assets.sandbox.config import SandboxConfig
from microcrop_assets.sandbox.scenario import Scenario
from microcrop_assets.sandbox.world import World, crop_conditions

TRUE_LOSS_SHORTFALL = Decimal("0.10")


def true_conditions(config: SandboxConfig, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Per plot and day of [first, last]: `condition` (with the scenario) and `normal` (without)."""
    actual_world = World(config)
    normal_world = World(dataclasses.replace(config, scenario=Scenario()))
    days = pd.date_range(first, last, freq="D").date
    frames = []
    for plot in actual_world.plots:
        args = (plot.lon, plot.lat, plot.crop, plot.sowing_date, first, last)
        frames.append(
            pd.DataFrame(
                {
                    "plot_id": plot.plot_id,
                    "day": days,
                    "condition": crop_conditions(actual_world, *args),
                    "normal": crop_conditions(normal_world, *args),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def true_losses(conditions: pd.DataFrame) -> pd.DataFrame:
    """Per plot: mean condition with and without the events, the shortfall (4 decimals, half-up) and
    whether it is a true loss."""
    sums = conditions.groupby("plot_id")[["condition", "normal"]].sum()
    ratio = np.where(sums["normal"] > 0, sums["condition"] / sums["normal"], 1.0)
    shortfall = [
        max(Decimal(0), (Decimal(1) - Decimal(repr(float(r))))).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        for r in ratio
    ]
    means = conditions.groupby("plot_id")[["condition", "normal"]].mean()
    return pd.DataFrame(
        {
            "plot_id": sums.index,
            "mean_condition": means["condition"].round(4).to_numpy(),
            "mean_normal": means["normal"].round(4).to_numpy(),
            "shortfall": shortfall,
            "true_loss": [s >= TRUE_LOSS_SHORTFALL for s in shortfall],
        }
    ).reset_index(drop=True)
