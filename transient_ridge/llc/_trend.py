"""The shape of each run's LLC over training, read from ``llc.zarr`` (its sound estimates only).

Hoogland et al. (2024) split training into stages at the turning points of the
LLC curve: it rises while the network acquires structure and can fall while it
simplifies. This module states, per run, whether the LLC rises, falls or stays
flat over the estimated checkpoints, so that claims.md reports the shape with
its numbers instead of leaving it to the eye (the claims report renders the table).
Estimates that are not sound (``estimate_status``: not converged, unreliable or
failed) are listed but never shape the verdict.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ..config import format_task_count
from ._diagnostics import SOUND
from ._read import read_estimates

__all__ = ["SHAPE_TOLERANCE", "TOO_FEW", "curve_shape", "llc_over_training_report"]

# A change counts when it exceeds 20 % of the reference value: the spread of a
# healthy final estimate across ε on the plateau is ≈ 6 %, and across chains
# 2-8 % (docs/llc.md), so smaller moves are not read as a shape.
SHAPE_TOLERANCE = 0.2
TOO_FEW = "too few sound estimates"


def curve_shape(values: np.ndarray, tolerance: float = SHAPE_TOLERANCE) -> str:
    """Shape of a sequence of LLC estimates in step order.

    Args:
        values: ``(n,)`` sound estimates, in step order (non-finite entries are dropped).
        tolerance: relative change that counts (fraction of the reference value).

    Returns:
        ``"rises, then falls"`` when an interior value exceeds both ends by more
        than ``tolerance`` (of the larger end); ``"falls, then rises"`` when one lies
        below both by more than ``tolerance`` (of the smaller end); otherwise
        ``"rises"`` / ``"falls"`` when the last value is above / below the first by
        more than ``tolerance`` of the first, else ``"flat"``;
        :data:`TOO_FEW` with fewer than two finite values.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return TOO_FEW
    first, last = float(v[0]), float(v[-1])
    if v.size > 2:
        interior = v[1:-1]
        if float(interior.max()) > (1 + tolerance) * max(first, last):
            return "rises, then falls"
        if float(interior.min()) < (1 - tolerance) * min(first, last):
            return "falls, then rises"
    if last > (1 + tolerance) * first:
        return "rises"
    if last < (1 - tolerance) * first:
        return "falls"
    return "flat"


def llc_over_training_report(llc: xr.Dataset, tolerance: float = SHAPE_TOLERANCE) -> dict:
    """Every run's LLC estimates over training, their health and the curve's shape.

    Args:
        llc: the ``llc.zarr`` dataset, read by :func:`~._read.read_estimates`.
        tolerance: see :func:`curve_shape`.

    Returns:
        ``{"tolerance", "steps", "runs"}``; each run has ``M`` (label), per step
        ``llc_mean``, ``llc_sem`` and ``status`` (``None`` where the run has no
        estimate at that step), the ``shape`` of its sound estimates, and
        ``first_step``, ``last_step``, ``last_over_first`` of those (NaN with fewer than two).
    """
    table = read_estimates(llc)
    steps = table.coords["step"].astype(np.int64)
    mean, sem, status, recorded = table["llc_mean"], table["llc_sem"], table.status, table.recorded
    runs = []
    for i, M in enumerate(llc["M"].values):
        sound = recorded[i] & (status[i] == SOUND)
        values = mean[i][sound]
        ratio = float(values[-1] / values[0]) if values.size >= 2 else math.nan
        runs.append({
            "M": format_task_count(float(M)),
            "llc_mean": [float(x) if r else None for x, r in zip(mean[i], recorded[i])],
            "llc_sem": [float(x) if r else None for x, r in zip(sem[i], recorded[i])],
            "status": [str(s) if r else None for s, r in zip(status[i], recorded[i])],
            "shape": curve_shape(values, tolerance),
            "first_step": int(steps[sound][0]) if values.size >= 2 else None,
            "last_step": int(steps[sound][-1]) if values.size >= 2 else None,
            "last_over_first": ratio,
        })
    return {"tolerance": tolerance, "steps": [int(s) for s in steps], "runs": runs}
