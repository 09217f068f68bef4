"""Health and convergence of one SGLD LLC estimate, and the one status derived from them (numpy only).

An estimate is only as good as its chains. Three ways it can go wrong, each
with its own check on the stored loss traces:

* **divergence and spikes** (health): a chain whose loss or weights become
  NaN/inf has *failed*; a minibatch loss that climbs past :data:`SPIKE_RATIO`
  × ``ℓ_n(w*)`` means steps too large for the local curvature, so λ̂ measures
  the step size rather than the posterior (:func:`trace_peak_ratio`);
* **chains that disagree** (mixing): split-R̂ of the post-burn-in loss traces
  across chains (:func:`split_rhat`; Gelman et al., *Bayesian Data Analysis*,
  3rd ed., §11.4) above :data:`RHAT_MAX`;
* **chains that have not settled** (stationarity): the mean of the second half
  of the draws differs from the first half's by more than :data:`HALF_Z_MAX`
  Monte Carlo standard errors, estimated by batch means
  (:func:`half_drift_z`; Flegal & Jones 2010 for batch-means MCSE).

:func:`estimate_status` turns these into one of :data:`SOUND`,
:data:`NOT_CONVERGED`, :data:`UNRELIABLE` or :data:`FAILED`. It is the single
place where the thresholds are applied: the calibration's "healthy", the
figures' marks and the claims' refusals all call it. A check that could not
be computed (NaN: too few draws, no trace) does not pass: only an estimate
whose every check was computed and passed is sound.

The MALA acceptance rate (``SGLDLearningCoefficient.mala_acceptance_``) is
recorded beside these but gates nothing (docs/llc.md, "Convergence
diagnostics", has the measurements behind that choice).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SPIKE_RATIO",
    "RHAT_MAX",
    "HALF_Z_MAX",
    "HALF_BATCHES",
    "SOUND",
    "NOT_CONVERGED",
    "UNRELIABLE",
    "FAILED",
    "STATUSES",
    "NO_ESTIMATE",
    "STATUS_FLAGS",
    "status_code",
    "trace_peak_ratio",
    "split_rhat",
    "half_drift_z",
    "estimate_status",
]

# A chain whose minibatch loss climbs past this multiple of ℓ_n(w*) has taken
# steps too large for the local curvature: its estimate reflects the step size,
# not the posterior. Measured (docs/llc.md): healthy final checkpoints peak at
# 2-4x their start loss; transient M=8 at step 2000 with ε = 1e-3 peaks at 30x
# and its estimate is 7x the small-ε value.
SPIKE_RATIO = 10.0

# Split-R̂ above this: the chains (or the two halves of a chain) have not sampled
# the same distribution. 1.1 is the classic threshold of Gelman et al. (BDA3).
RHAT_MAX = 1.1

# |second-half mean − first-half mean| above this many Monte Carlo standard
# errors: the chains are still drifting. With 4 chains × 5 batches per half the
# MCSE has about 16 degrees of freedom; 4 keeps the false alarms of stationary
# chains rare across the ~50 estimates of an experiment (measured: docs/llc.md).
HALF_Z_MAX = 4.0

# Batches per half of each chain's draws for the batch-means MCSE.
HALF_BATCHES = 5

# Status of one estimate (see :func:`estimate_status`), from best to worst.
SOUND = "sound"  # finite, no chain diverged, no spike, converged
NOT_CONVERGED = "not converged"  # healthy chains, but they disagree or still drift (or that could not be checked)
UNRELIABLE = "unreliable"  # a number, but some chains diverged or the traces spiked
FAILED = "failed"  # no number: every chain diverged, ℓ_n(w*) was not finite, or the fit raised
STATUSES = (SOUND, NOT_CONVERGED, UNRELIABLE, FAILED)
# How stores keep the status: an int8 code (zarr v3 has no string type), -1 where there is no estimate.
NO_ESTIMATE = -1
STATUS_FLAGS = {"flag_values": list(range(len(STATUSES))), "flag_meanings": " ".join(s.replace(" ", "_") for s in STATUSES),
                "missing_value_meaning": f"{NO_ESTIMATE}: no estimate at this point"}


def status_code(status: np.ndarray) -> np.ndarray:
    """``STATUSES`` index of each status string, int8 (``""`` → :data:`NO_ESTIMATE`)."""
    lookup = {name: i for i, name in enumerate(STATUSES)} | {"": NO_ESTIMATE}
    return np.vectorize(lookup.__getitem__, otypes=[np.int8])(np.asarray(status, dtype=str))


def trace_peak_ratio(loss_trace: np.ndarray, init_loss: np.ndarray | float) -> np.ndarray:
    """Highest SGLD minibatch loss of an estimate over its starting loss ``ℓ_n(w*)``.

    Args:
        loss_trace: ``(..., chain, draw)`` minibatch losses of one or more estimates
            (NaN entries, e.g. after an early stop or as padding, are ignored).
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


def _draws(draws: np.ndarray) -> np.ndarray:
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"draws must have (..., chain, draw) dims; got shape {x.shape}")
    return x


def split_rhat(draws: np.ndarray) -> np.ndarray:
    """Split-R̂ of the post-burn-in draws across chains (BDA3 §11.4, eq. 11.4 with split chains).

    Each of the ``C`` chains is cut into two halves (the middle draw of an odd
    count is dropped), giving ``2C`` sequences of length ``h``. With ``W`` the
    mean within-sequence variance and ``B/h`` the variance of the sequence means::

        var⁺ = (h − 1)/h · W + B/h,    R̂ = sqrt(var⁺ / W).

    Args:
        draws: ``(..., chain, draw)`` post-burn-in losses (burn-in already removed).

    Returns:
        ``draws.shape[:-2]`` float64; NaN where a sequence has a non-finite draw,
        where ``h < 2`` or ``C < 1``, or where ``W`` is 0.
    """
    x = _draws(draws)
    h = x.shape[-1] // 2
    if h < 2 or x.shape[-2] < 1:
        return np.full(x.shape[:-2], np.nan)
    halves = np.concatenate([x[..., :h], x[..., x.shape[-1] - h :]], axis=-2)  # (..., 2C, h)
    means = halves.mean(axis=-1)
    within = halves.var(axis=-1, ddof=1).mean(axis=-1)
    between = means.var(axis=-1, ddof=1) if halves.shape[-2] > 1 else np.zeros(within.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = np.sqrt(((h - 1) / h * within + between) / within)
    ok = np.isfinite(halves).all(axis=(-2, -1)) & (within > 0)
    return np.where(ok, rhat, np.nan)


def half_drift_z(draws: np.ndarray, batches: int = HALF_BATCHES) -> np.ndarray:
    """Second-half minus first-half mean of the draws, in Monte Carlo standard errors (batch means).

    The draws of each chain are cut into two halves of ``h`` draws; each half into
    ``batches`` batches of ``b = h // batches`` draws (the first ``batches · b``
    of the half are used). The MCSE² of a chain's half-mean is the sample variance
    (ddof 1) of its batch means over ``batches``; the pooled half-mean is the mean
    over chains, with MCSE² the sum of the chains' MCSE² over ``C²``::

        z = (mean₂ − mean₁) / sqrt(MCSE₁² + MCSE₂²).

    Stationary chains give ``z`` of order 1; chains still settling (burn-in too
    short for the step size) give a large ``|z|``.

    Args:
        draws: ``(..., chain, draw)`` post-burn-in losses.
        batches: batches per half (≥ 2).

    Returns:
        ``draws.shape[:-2]`` float64; NaN where a used draw is not finite, where a
        batch would have fewer than 1 draw, or where the MCSE is 0.
    """
    if batches < 2:
        raise ValueError(f"batches={batches} must be >= 2 (a variance needs two batch means)")
    x = _draws(draws)
    h = x.shape[-1] // 2
    b = h // batches
    if b < 1:
        return np.full(x.shape[:-2], np.nan)
    used = batches * b
    halves = (x[..., :used], x[..., h : h + used])
    means, variances = [], []
    for half in halves:
        batch_means = half.reshape(*half.shape[:-1], batches, b).mean(axis=-1)  # (..., C, batches)
        C = half.shape[-2]
        means.append(batch_means.mean(axis=(-2, -1)))
        variances.append((batch_means.var(axis=-1, ddof=1) / batches).sum(axis=-1) / C**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (means[1] - means[0]) / np.sqrt(variances[0] + variances[1])
    ok = np.isfinite(x[..., :used]).all(axis=(-2, -1)) & np.isfinite(x[..., h : h + used]).all(axis=(-2, -1))
    ok &= (variances[0] + variances[1]) > 0
    return np.where(ok, z, np.nan)


def estimate_status(
    llc_mean: np.ndarray,
    failed_chains: np.ndarray,
    trace_peak: np.ndarray,
    rhat: np.ndarray,
    half_z: np.ndarray,
) -> np.ndarray:
    """The one status of LLC estimates, elementwise (the module docstring has the checks).

    Args:
        llc_mean: estimates (NaN: no number).
        failed_chains: diverged chains per estimate.
        trace_peak: :func:`trace_peak_ratio` per estimate.
        rhat: :func:`split_rhat` per estimate.
        half_z: :func:`half_drift_z` per estimate.

    Returns:
        Array of the broadcast shape, dtype ``<U13``: :data:`FAILED` where the
        estimate is not finite; else :data:`UNRELIABLE` where a chain diverged or
        the peak exceeds :data:`SPIKE_RATIO`; else :data:`NOT_CONVERGED` where
        split-R̂ exceeds :data:`RHAT_MAX` or ``|half_z|`` exceeds
        :data:`HALF_Z_MAX`; else :data:`SOUND`. One NaN behaviour: a check whose
        value is NaN (not computed) fails, so NaN ``failed_chains`` or
        ``trace_peak`` give :data:`UNRELIABLE` and NaN ``rhat`` or ``half_z``
        :data:`NOT_CONVERGED`.
    """
    mean, failed, peak, r, z = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (
        llc_mean, failed_chains, trace_peak, rhat, half_z)))
    healthy = (failed == 0) & (peak <= SPIKE_RATIO)  # NaN compares False: fails
    converged = (r <= RHAT_MAX) & (np.abs(z) <= HALF_Z_MAX)
    status = np.where(converged, SOUND, NOT_CONVERGED)
    status = np.where(healthy, status, UNRELIABLE)
    return np.where(np.isfinite(mean), status, FAILED).astype("<U13")
