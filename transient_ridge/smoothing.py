"""Centred moving average over checkpoints: the one smoothing that figures and claims both use.

A numeric module below both `plotting` and `claims` (numpy only), so that neither imports the other.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["smooth"]


def smooth(values: ArrayLike, window: int, axis: int = 0) -> NDArray[np.float64]:
    """Centred moving average of ``values`` along ``axis``, same length as the input.

    Point ``i`` of ``n`` becomes the mean of ``values[i - h_i : i + h_i + 1]`` with
    ``h_i = min((window - 1) // 2, i, n - 1 - i)``: the window shrinks
    symmetrically at the edges, so it stays centred and the first and last
    points (initialisation, end of training) are kept exactly.

    Non-finite entries are left out of every mean and stay NaN in the output,
    so a gap is not filled in by its neighbours.

    Args:
        values: any array; smoothing runs along ``axis`` (the checkpoint axis).
        window: odd number of checkpoints ≥ 1; 1 returns a float copy (raw).
        axis: the axis to smooth along.

    Returns:
        A float64 array of the same shape as ``values``.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise TypeError(f"window={window!r} must be an int (an odd number of checkpoints ≥ 1)")
    if window < 1 or window % 2 == 0:
        raise ValueError(
            f"window={window} must be an odd integer ≥ 1 (a centred window has as many "
            f"checkpoints on each side); use {max(1, window - 1)} or {max(1, window + 1)}"
        )
    data = np.array(values, dtype=np.float64)  # a copy, never a view of the input
    if window == 1 or data.size == 0:
        return data
    moved = np.moveaxis(data, axis, 0)
    n = moved.shape[0]
    finite = np.isfinite(moved)
    index = np.arange(n)
    half = np.minimum((window - 1) // 2, np.minimum(index, n - 1 - index))  # (n,)
    extra = (slice(None),) + (None,) * (moved.ndim - 1)  # broadcast (n,) over the other axes
    total = np.zeros_like(moved)
    count = np.zeros_like(moved)
    # Sum shifted copies (window is small): no cumulative sums, so no cancellation,
    # and a point whose window is itself (the edges) is copied exactly.
    for offset in range((1 - window) // 2, (window - 1) // 2 + 1):
        source = np.clip(index + offset, 0, n - 1)
        use = (np.abs(offset) <= half)[extra] & finite[source]
        total += np.where(use, moved[source], 0.0)
        count += use
    out = np.full_like(moved, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    out[~finite] = np.nan
    return np.moveaxis(out, 0, axis)
