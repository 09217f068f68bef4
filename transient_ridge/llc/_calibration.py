"""The calibration rule: which SGLD step size ε the LLC stage uses (numpy only).

The rule (docs/llc.md, "Choosing ε"), applied to an ε sweep of estimates at a
few calibration points (runs × checkpoints), ε sorted ascending, every chain
of equal length in SGLD time (units of ``1/(εγ)`` steps, so that every ε is
compared settled):

* an estimate is **healthy** when its status
  (:func:`~._diagnostics.estimate_status`) is ``sound``: finite, no chain
  diverged, no spike, converged (split-R̂ and the half-drift test);
* ε is **on the plateau** at a point when the estimate there lies within
  ``PLATEAU_TOLERANCE`` (relative) plus two combined standard errors of the
  estimate at the next smaller ε of the grid (the smallest ε has no neighbour,
  so it is never on the plateau);
* ε is **accepted** at a point when it and the next smaller ε are healthy there
  and ε is on the plateau;
* a point is **eligible** (takes part in the rule) when the grid shows a plateau
  there at all: the second-smallest ε is accepted. Where even the two smallest ε
  disagree or are not sound (e.g. weights far from a minimum, where the estimate
  keeps falling with ε and the chains keep drifting), no ε of the grid can be
  validated, and the point is reported as "no plateau" instead of blocking the
  choice;
* the rule is **satisfied** when at least one point is eligible and every final
  checkpoint among the points is (the final estimates are what the claims read);
  the choice is then the **largest ε accepted at every eligible point** (the
  second-smallest ε always is).

If the rule is not satisfied, the choice falls back, in this order, to the
largest ε that is healthy at every point, or else the ε with the fewest
unhealthy points among those with a number somewhere (the smallest among ties);
if no ε gave a number anywhere it is NaN ("every epsilon failed", and
``llc_run`` then records failures without refitting). The result says which
happened; the pipeline logs it as a warning and records it in the calibration
store, and never stops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ._diagnostics import FAILED, SOUND

__all__ = ["PLATEAU_TOLERANCE", "EpsilonChoice", "choose_epsilon"]

# Relative change of the estimate from the next smaller ε that still counts as
# a plateau (on top of two combined standard errors across chains).
PLATEAU_TOLERANCE = 0.2


@dataclasses.dataclass(frozen=True)
class EpsilonChoice:
    """The chosen ε (NaN: every estimate failed) and the evidence (arrays ``(point, epsilon)``, ``eligible`` ``(point,)``)."""

    epsilon: float
    rule_satisfied: bool
    reason: str
    healthy: np.ndarray
    plateau: np.ndarray
    accepted: np.ndarray
    eligible: np.ndarray


def choose_epsilon(
    epsilon: np.ndarray,
    llc_mean: np.ndarray,
    llc_sem: np.ndarray,
    status: np.ndarray,
    final: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
) -> EpsilonChoice:
    """Apply the calibration rule (module docstring).

    Args:
        epsilon: ``(E,)`` the grid, strictly ascending.
        llc_mean: ``(P, E)`` estimates at ``P`` calibration points (NaN = no number).
        llc_sem: ``(P, E)`` standard errors across chains (NaN counts as 0).
        status: ``(P, E)`` :func:`~._diagnostics.estimate_status` of each estimate.
        final: ``(P,)`` whether the point is a run's final checkpoint (default: none is).
        labels: ``P`` names of the points for the reason text (default ``point 0`` …).

    Returns:
        The :class:`EpsilonChoice`.
    """
    eps = np.asarray(epsilon, dtype=np.float64)
    if eps.ndim != 1 or eps.size == 0 or np.any(np.diff(eps) <= 0):
        raise ValueError(f"epsilon must be a non-empty, strictly ascending grid; got {eps.tolist()}")
    mean = np.atleast_2d(np.asarray(llc_mean, dtype=np.float64))
    sem = np.nan_to_num(np.atleast_2d(np.asarray(llc_sem, dtype=np.float64)), nan=0.0)
    status = np.atleast_2d(np.asarray(status, dtype=str))
    if not mean.shape == sem.shape == status.shape or mean.shape[1] != eps.size:
        raise ValueError(f"llc_mean, llc_sem, status must all be (points, {eps.size}); got {mean.shape}, "
                         f"{sem.shape}, {status.shape}")
    P = mean.shape[0]
    final = np.zeros(P, dtype=bool) if final is None else np.asarray(final, dtype=bool).reshape(P)
    labels = [f"point {p}" for p in range(P)] if labels is None else list(labels)

    healthy = (status == SOUND) & np.isfinite(mean)
    plateau = np.zeros_like(healthy)
    with np.errstate(invalid="ignore"):
        change = np.abs(mean[:, 1:] - mean[:, :-1])
        allowed = PLATEAU_TOLERANCE * np.abs(mean[:, :-1]) + 2.0 * np.hypot(sem[:, 1:], sem[:, :-1])
        plateau[:, 1:] = change <= allowed
    accepted = np.zeros_like(healthy)
    accepted[:, 1:] = healthy[:, 1:] & healthy[:, :-1] & plateau[:, 1:]
    eligible = accepted[:, 1] if eps.size > 1 else np.zeros(P, dtype=bool)
    excluded = [labels[p] for p in np.flatnonzero(~eligible)]
    excluded_text = f"; no plateau (left out of the rule): {', '.join(excluded)}" if excluded else ""

    def result(e: float, satisfied: bool, reason: str) -> EpsilonChoice:
        return EpsilonChoice(float(e), satisfied, reason, healthy, plateau, accepted, eligible)

    finals_without = [labels[p] for p in np.flatnonzero(final & ~eligible)]
    if eligible.any() and not finals_without:
        e = int(np.flatnonzero(accepted[eligible].all(axis=0))[-1])
        return result(
            eps[e], True,
            f"epsilon={eps[e]:g} is the largest grid value that is sound and on the plateau (within "
            f"{PLATEAU_TOLERANCE:.0%} + 2 SE of the next smaller epsilon) at every calibration point with a plateau "
            f"({int(eligible.sum())} of {P}){excluded_text}",
        )
    why = (
        f"the final checkpoint(s) {', '.join(finals_without)} show no plateau (the two smallest epsilon are not both "
        "sound and in agreement)" if eligible.any() else
        "no calibration point shows a plateau (the two smallest epsilon are nowhere both sound and in agreement)"
    )
    all_healthy = np.flatnonzero(healthy.all(axis=0))
    if all_healthy.size:
        e = int(all_healthy[-1])
        return result(eps[e], False, (
            f"RULE NOT SATISFIED: {why}; fell back to epsilon={eps[e]:g}, the largest sound at every point "
            "(extend the grid to smaller epsilon or lengthen the chains in SGLD time)"
        ))
    with_number = np.flatnonzero((status != FAILED).any(axis=0) & np.isfinite(mean).any(axis=0))
    if not with_number.size:
        return result(np.nan, False, (
            f"RULE NOT SATISFIED: every epsilon in {eps.tolist()} failed at every calibration point (no estimate); "
            "llc_run records its estimates as failed without refitting (use smaller epsilon)"
        ))
    unhealthy = (~healthy).sum(axis=0)
    e = int(with_number[np.argmin(unhealthy[with_number])])
    return result(eps[e], False, (
        f"RULE NOT SATISFIED: {why}, and no epsilon in {eps.tolist()} is sound at every calibration point; fell back "
        f"to epsilon={eps[e]:g}, not sound at {int(unhealthy[e])} of {P} points (extend the grid to smaller epsilon)"
    ))
