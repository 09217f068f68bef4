"""Health checks of an SGLD LLC estimate, from its stored loss traces (numpy only).

An estimate is only as good as its chains: when the SGLD step size is too
large for the local curvature, steps overshoot, the minibatch loss spikes, and
λ̂ measures the step size rather than the localized posterior. These checks
read the ``loss_trace`` and ``init_loss`` that every LLC store keeps, so
they apply to stores written before they existed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPIKE_RATIO", "trace_peak_ratio"]

# A chain whose minibatch loss climbs past this multiple of ℓ_n(w*) has taken
# steps too large for the local curvature: its estimate reflects the step size,
# not the posterior. Measured (docs/llc.md): healthy final checkpoints peak at
# 2.7x their start loss; transient M=8 at step 2000 with ε = 1e-3 peaks at 30x
# and its estimate is 7x the small-ε value.
SPIKE_RATIO = 10.0


def trace_peak_ratio(loss_trace: np.ndarray, init_loss: np.ndarray | float) -> np.ndarray:
    """Highest SGLD minibatch loss of an estimate over its starting loss ``ℓ_n(w*)``.

    Args:
        loss_trace: ``(..., chain, draw)`` minibatch losses of one or more estimates
            (NaN entries, e.g. after an early stop, are ignored).
        init_loss: ``ℓ_n(w*)``, broadcastable to ``loss_trace.shape[:-2]``.

    Returns:
        ``loss_trace.shape[:-2]`` float64 array: ``max over chains and draws / init_loss``;
        NaN where the trace has no finite entry or ``init_loss`` is not positive.
        Above :data:`SPIKE_RATIO` the estimate is not to be trusted.
    """
    trace = np.asarray(loss_trace, dtype=np.float64)
    if trace.ndim < 2:
        raise ValueError(f"loss_trace must have (..., chain, draw) dims; got shape {trace.shape}")
    flat = trace.reshape(*trace.shape[:-2], -1)
    finite = np.isfinite(flat).any(axis=-1)
    peak = np.max(np.where(np.isfinite(flat), flat, -np.inf), axis=-1)
    init = np.broadcast_to(np.asarray(init_loss, dtype=np.float64), peak.shape)
    ok = finite & np.isfinite(init) & (init > 0)
    return np.where(ok, peak / np.where(ok, init, 1.0), np.nan)
