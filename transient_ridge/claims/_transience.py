"""Transience of one run: the paper's "behaves like ridge first, then specialises", measured.

:func:`measure_transience` reads one run's smoothed OOD loss and distances to ridge
and dMMSE_M; the thresholds (module constants) are part of the ``transient_ridge``
claim's wording.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..predictors import per_token_mse
from ..smoothing import smooth

__all__ = [
    "APPROACH_MAX",
    "DMMSE_STILL_FALLING",
    "OOD_DEPTH_MAX",
    "TRANSIENT_OOD_RISE",
    "TRANSIENT_RIDGE_RISE",
    "TransienceMeasure",
    "measure_transience",
    "ood_losses",
    "ridge_dmmse_gap",
]

TRANSIENT_OOD_RISE = 0.20  # OOD loss rises >= 20 % above its interior minimum
TRANSIENT_RIDGE_RISE = 0.10  # distance to ridge rises >= 10 % above its interior minimum
DMMSE_STILL_FALLING = 0.8  # distance to dMMSE at the end <= 0.8 x its value at the OOD minimum
# "behaves like ridge first" means coming at least halfway to ridge, measured against
# the distance between ridge and dMMSE_M themselves:
APPROACH_MAX = 0.5  # closest smoothed distance to ridge <= 0.5 x the ridge-dMMSE_M gap
OOD_DEPTH_MAX = 0.5  # OOD minimum at most halfway from ridge's OOD loss to dMMSE_M's


@dataclass
class TransienceMeasure:
    """Transience numbers of one run (smoothed series).

    ``rises``: the rise rules (interior minima, OOD rise, ridge rise, distance to
    dMMSE still falling); ``approach`` = ``ridge_min / ridge_dmmse_gap`` and
    ``ood_depth`` = ``(ood_min − ridge_ood_loss) / (dmmse_ood_loss − ridge_ood_loss)``
    (``None`` when the baselines lack what they need); ``approaches_ridge``: both at
    most :data:`APPROACH_MAX` / :data:`OOD_DEPTH_MAX`; ``is_transient``: both rules.
    """

    M: float
    ood_min: float
    ood_min_step: int
    ood_final: float
    ood_rise: float
    ridge_min: float
    ridge_min_step: int
    ridge_final: float
    ridge_rise: float
    dmmse_at_ood_min: float
    dmmse_final: float
    dmmse_final_over_at_ood_min: float
    ridge_dmmse_gap: float | None
    ridge_ood_loss: float | None
    dmmse_ood_loss: float | None
    approach: float | None
    ood_depth: float | None
    rises: bool
    approaches_ridge: bool
    is_transient: bool


def _rise(series: np.ndarray) -> tuple[float, int, float, float]:
    """(min, argmin, final, final/min − 1) with the minimum taken before the end."""
    index = int(np.argmin(series))
    minimum, final = float(series[index]), float(series[-1])
    return minimum, index, final, final / minimum - 1.0 if minimum > 0 else math.inf


def ood_losses(baselines: xr.Dataset, M: float) -> tuple[float | None, float | None]:
    """``(ridge's, dMMSE_M's)`` OOD loss, each averaged over tokens (``None`` where the store lacks it)."""
    ridge = float(baselines["loss_ridge_ood"].mean()) if "loss_ridge_ood" in baselines else None
    dmmse = None
    if "loss_dmmse_ood" in baselines and "M" in baselines["loss_dmmse_ood"].dims and M in baselines["M"].values:
        dmmse = float(baselines["loss_dmmse_ood"].sel(M=M).mean())
    return ridge, dmmse


def _ratio(numerator: float, denominator: float | None) -> float | None:
    return None if denominator is None or not denominator > 0 else numerator / denominator


def measure_transience(
    outputs: xr.Dataset, smoothing_window: int, baselines: xr.Dataset | None = None
) -> TransienceMeasure:
    """Transience of one run: OOD loss and distance to ridge fall then rise, distance to dMMSE keeps
    falling, and the run first came at least halfway to ridge.

    Args:
        outputs: one run's ``outputs.zarr`` (``loss_ood``, ``dist_ridge``, ``dist_dmmse`` over ``step``).
        smoothing_window: odd number of checkpoints of the centred moving average.
        baselines: ``baselines.zarr``, for the ridge–dMMSE_M gap (``ridge_id``, ``dmmse_id``)
            and the OOD losses (``loss_ridge_ood``, ``loss_dmmse_ood``). Without it (or
            without those variables) ``approach`` / ``ood_depth`` are ``None`` and the
            run is not counted as transient.
    """
    M = float(outputs.attrs["M"])
    steps = outputs["step"].values
    ood = smooth(outputs["loss_ood"].values, smoothing_window)
    ridge = smooth(outputs["dist_ridge"].values, smoothing_window)
    dmmse = smooth(outputs["dist_dmmse"].values, smoothing_window)
    ood_min, ood_i, ood_final, ood_rise = _rise(ood)
    ridge_min, ridge_i, ridge_final, ridge_rise = _rise(ridge)
    # "keeps falling" on a noisy series: well below, at the end, its value at the OOD minimum
    dmmse_at_ood_min, dmmse_final = float(dmmse[ood_i]), float(dmmse[-1])
    dmmse_ratio = dmmse_final / dmmse_at_ood_min if dmmse_at_ood_min > 0 else math.inf
    interior = 0 < ood_i < len(steps) - 1 and 0 < ridge_i < len(steps) - 1
    rises = bool(
        interior
        and ood_rise >= TRANSIENT_OOD_RISE
        and ridge_rise >= TRANSIENT_RIDGE_RISE
        and dmmse_ratio <= DMMSE_STILL_FALLING
    )
    gap = ridge_dmmse_gap(baselines, M) if baselines is not None else None
    ridge_ood, dmmse_ood = ood_losses(baselines, M) if baselines is not None else (None, None)
    approach = _ratio(ridge_min, gap)
    depth = None if ridge_ood is None or dmmse_ood is None else _ratio(ood_min - ridge_ood, dmmse_ood - ridge_ood)
    approaches = approach is not None and depth is not None and approach <= APPROACH_MAX and depth <= OOD_DEPTH_MAX
    return TransienceMeasure(
        M=M,
        ood_min=ood_min,
        ood_min_step=int(steps[ood_i]),
        ood_final=ood_final,
        ood_rise=ood_rise,
        ridge_min=ridge_min,
        ridge_min_step=int(steps[ridge_i]),
        ridge_final=ridge_final,
        ridge_rise=ridge_rise,
        dmmse_at_ood_min=dmmse_at_ood_min,
        dmmse_final=dmmse_final,
        dmmse_final_over_at_ood_min=dmmse_ratio,
        ridge_dmmse_gap=gap,
        ridge_ood_loss=ridge_ood,
        dmmse_ood_loss=dmmse_ood,
        approach=approach,
        ood_depth=depth,
        rises=rises,
        approaches_ridge=bool(approaches),
        is_transient=bool(rises and approaches),
    )


def ridge_dmmse_gap(baselines: xr.Dataset, M: float) -> float | None:
    """Distance between ridge and dMMSE_M themselves on the q_M probe set (``None`` without the predictions).

    Measured like a run's ``dist_ridge``: mean over sequences and tokens of the squared
    prediction difference. A run whose distance to ridge never falls well below this gap
    is never nearer to ridge than dMMSE_M is, so its "rise" away from ridge is bounded.
    """
    if "ridge_id" not in baselines or "dmmse_id" not in baselines or M not in baselines["M"].values:
        return None
    at_M = baselines.sel(M=M)
    return float(per_token_mse(at_M["ridge_id"].values, at_M["dmmse_id"].values).mean())
