"""The calibration rule: which SGLD step size ε the LLC stage uses (numpy only).

The rule (docs/llc.md, "Choosing ε"), applied to an ε sweep of estimates at a
few calibration points (runs × checkpoints), ε sorted ascending:

* an estimate is **healthy** when no chain diverged, its trace peak is at most
  :data:`~transient_ridge.llc_health.SPIKE_RATIO` × its start loss, and it is finite;
* ε is **on the plateau** at a point when the estimate there lies within
  ``PLATEAU_TOLERANCE`` (relative) plus two combined standard errors of the
  estimate at the next smaller ε of the grid (the smallest ε has no neighbour,
  so it is never on the plateau);
* ε is **accepted** at a point when it and the next smaller ε are healthy there
  and ε is on the plateau;
* the choice is the **largest ε accepted at every calibration point**.

If no ε is accepted everywhere, the rule is not satisfied, and the choice falls
back, in this order, to the largest ε that is healthy at every point, or else
the ε with the fewest unhealthy points (the smallest among ties). The result
says which happened; the pipeline logs it as a warning and records it in the
calibration store, and never stops.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .llc_health import SPIKE_RATIO

__all__ = ["PLATEAU_TOLERANCE", "EpsilonChoice", "choose_epsilon"]

# Relative change of the estimate from the next smaller ε that still counts as
# a plateau (on top of two combined standard errors across chains).
PLATEAU_TOLERANCE = 0.2


@dataclasses.dataclass(frozen=True)
class EpsilonChoice:
    """The chosen ε and the evidence behind it (arrays are ``(point, epsilon)``)."""

    epsilon: float
    rule_satisfied: bool
    reason: str
    healthy: np.ndarray
    plateau: np.ndarray
    accepted: np.ndarray


def choose_epsilon(
    epsilon: np.ndarray,
    llc_mean: np.ndarray,
    llc_sem: np.ndarray,
    failed_chains: np.ndarray,
    trace_peak: np.ndarray,
) -> EpsilonChoice:
    """Apply the calibration rule (module docstring).

    Args:
        epsilon: ``(E,)`` the grid, strictly ascending.
        llc_mean: ``(P, E)`` estimates at ``P`` calibration points (NaN = every chain diverged).
        llc_sem: ``(P, E)`` standard errors across chains (NaN counts as 0).
        failed_chains: ``(P, E)`` diverged chains per estimate.
        trace_peak: ``(P, E)`` highest SGLD loss over the start loss
            (:func:`~transient_ridge.llc_health.trace_peak_ratio`).

    Returns:
        The :class:`EpsilonChoice`.
    """
    eps = np.asarray(epsilon, dtype=np.float64)
    if eps.ndim != 1 or eps.size == 0 or np.any(np.diff(eps) <= 0):
        raise ValueError(f"epsilon must be a non-empty, strictly ascending grid; got {eps.tolist()}")
    mean = np.atleast_2d(np.asarray(llc_mean, dtype=np.float64))
    sem = np.nan_to_num(np.atleast_2d(np.asarray(llc_sem, dtype=np.float64)), nan=0.0)
    failed = np.atleast_2d(np.asarray(failed_chains, dtype=np.float64))
    peak = np.atleast_2d(np.asarray(trace_peak, dtype=np.float64))
    if not mean.shape == sem.shape == failed.shape == peak.shape or mean.shape[1] != eps.size:
        raise ValueError(f"llc_mean, llc_sem, failed_chains, trace_peak must all be (points, {eps.size})")

    healthy = np.isfinite(mean) & (failed == 0) & (peak <= SPIKE_RATIO)
    plateau = np.zeros_like(healthy)
    with np.errstate(invalid="ignore"):
        change = np.abs(mean[:, 1:] - mean[:, :-1])
        allowed = PLATEAU_TOLERANCE * np.abs(mean[:, :-1]) + 2.0 * np.hypot(sem[:, 1:], sem[:, :-1])
        plateau[:, 1:] = change <= allowed
    accepted = np.zeros_like(healthy)
    accepted[:, 1:] = healthy[:, 1:] & healthy[:, :-1] & plateau[:, 1:]

    everywhere = np.flatnonzero(accepted.all(axis=0))
    if everywhere.size:
        e = int(everywhere[-1])
        return EpsilonChoice(
            float(eps[e]), True,
            f"epsilon={eps[e]:g} is the largest grid value that is healthy and on the plateau "
            f"(within {PLATEAU_TOLERANCE:.0%} + 2 SE of the next smaller epsilon) at every calibration point",
            healthy, plateau, accepted,
        )
    all_healthy = np.flatnonzero(healthy.all(axis=0))
    if all_healthy.size:
        e = int(all_healthy[-1])
        reason = (
            f"RULE NOT SATISFIED: no epsilon in {eps.tolist()} is on the plateau at every calibration point; "
            f"fell back to epsilon={eps[e]:g}, the largest with healthy chains at every point "
            "(the estimates still depend on epsilon: extend the grid or lengthen the chains)"
        )
    else:
        unhealthy = (~healthy).sum(axis=0)
        e = int(np.flatnonzero(unhealthy == unhealthy.min())[0])
        reason = (
            f"RULE NOT SATISFIED: no epsilon in {eps.tolist()} gives healthy chains at every calibration point; "
            f"fell back to epsilon={eps[e]:g}, unhealthy at {int(unhealthy[e])} of {mean.shape[0]} points "
            "(extend the grid to smaller epsilon)"
        )
    return EpsilonChoice(float(eps[e]), False, reason, healthy, plateau, accepted)
