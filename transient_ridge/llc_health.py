"""Health checks of an SGLD LLC estimate, from its stored loss traces (numpy only).

An estimate is only as good as its chains: when the SGLD step size is too
large for the local curvature, steps overshoot, the minibatch loss spikes, and
λ̂ measures the step size rather than the localized posterior. These checks
read the ``loss_trace`` and ``init_loss`` that every LLC store keeps, so
they apply to stores written before they existed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPIKE_RATIO", "FAILED", "SOUND", "UNRELIABLE", "estimate_status", "store_health", "trace_peak_ratio"]

# A chain whose minibatch loss climbs past this multiple of ℓ_n(w*) has taken
# steps too large for the local curvature: its estimate reflects the step size,
# not the posterior. Measured (docs/llc.md): healthy final checkpoints peak at
# 2.7x their start loss; transient M=8 at step 2000 with ε = 1e-3 peaks at 30x
# and its estimate is 7x the small-ε value.
SPIKE_RATIO = 10.0

# Health of one estimate (see :func:`estimate_status`).
SOUND = "sound"  # no chain diverged, trace peak <= SPIKE_RATIO
UNRELIABLE = "unreliable"  # a number, but some chains diverged or the traces spiked
FAILED = "failed"  # every chain diverged: no number (NaN)


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


def estimate_status(llc_mean: np.ndarray, failed_chains: np.ndarray, trace_peak: np.ndarray) -> np.ndarray:
    """Health of LLC estimates: :data:`SOUND`, :data:`UNRELIABLE` or :data:`FAILED`, elementwise.

    Args:
        llc_mean: estimates (NaN where every chain diverged).
        failed_chains: number of diverged chains per estimate (NaN = not recorded, e.g. an older store).
        trace_peak: :func:`trace_peak_ratio` per estimate.

    Returns:
        Array of the broadcast shape with dtype ``<U10``: ``failed`` where the
        estimate is not finite; ``unreliable`` where some chains diverged or the
        peak exceeds :data:`SPIKE_RATIO`; ``sound`` otherwise.
    """
    mean, failed, peak = np.broadcast_arrays(
        np.asarray(llc_mean, np.float64), np.asarray(failed_chains, np.float64), np.asarray(trace_peak, np.float64)
    )
    unreliable = (np.nan_to_num(failed, nan=0.0) > 0) | (np.nan_to_num(peak, nan=0.0) > SPIKE_RATIO)
    return np.where(~np.isfinite(mean), FAILED, np.where(unreliable, UNRELIABLE, SOUND)).astype("<U10")


def store_health(llc) -> dict[str, np.ndarray]:
    """Health of every estimate of an ``llc.zarr`` dataset (``M``, ``step`` dims).

    Args:
        llc: an xarray Dataset with ``llc_mean`` over ``(M, step)`` and, when
            recorded, ``failed_chains``, ``loss_trace`` ``(M, step, chain, draw)``
            and ``init_loss``; stores written before those fields get NaN for them.

    Returns:
        ``(M, step)`` arrays: ``mean``, ``failed`` (diverged chains, NaN = not
        recorded), ``peak`` (:func:`trace_peak_ratio`), ``status``
        (:func:`estimate_status`) and ``recorded`` (bool: the run has an estimate
        at that step, failed ones included).
    """
    mean = llc["llc_mean"].transpose("M", "step").values.astype(np.float64)
    if "failed_chains" in llc:
        failed = llc["failed_chains"].transpose("M", "step").values.astype(np.float64)
        recorded = np.isfinite(failed)
    else:
        failed = np.full(mean.shape, np.nan)
        recorded = np.isfinite(mean)
    if "loss_trace" in llc and "init_loss" in llc:
        peak = trace_peak_ratio(
            llc["loss_trace"].transpose("M", "step", "chain", "draw").values, llc["init_loss"].transpose("M", "step").values
        )
    else:
        peak = np.full(mean.shape, np.nan)
    return {"mean": mean, "failed": failed, "peak": peak, "status": estimate_status(mean, failed, peak),
            "recorded": recorded}
