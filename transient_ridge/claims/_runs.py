"""Claims about where the runs go: the extremes end at their own predictor, the PCA separates them,
intermediate M are transient (Carroll et al. 2025, Fig. 1)."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from ._claim import Claim
from ._inputs import RIDGE_OOD_TOLERANCE, ClaimInputs, label
from ._transience import (
    APPROACH_MAX,
    DMMSE_STILL_FALLING,
    OOD_DEPTH_MAX,
    TRANSIENT_OOD_RISE,
    TRANSIENT_RIDGE_RISE,
)

__all__ = [
    "DMMSE_FAR_BELOW",
    "PCA_SEPARATION",
    "smallest_M_ends_at_dmmse",
    "infinite_M_ends_at_ridge",
    "pca_separates_predictors",
    "transient_ridge",
]

DMMSE_FAR_BELOW = 0.25  # final dist_dmmse <= 0.25 * dist_ridge counts as "far below"
PCA_SEPARATION = 2.0  # ridge-to-dMMSE gap >= 2x the median final-point-to-own-predictor distance


def smallest_M_ends_at_dmmse(s: ClaimInputs) -> Claim:
    """The smallest M ends far nearer dMMSE_M than ridge."""
    name = "smallest_M_ends_at_dmmse"
    statement = (f"The smallest M ends at dMMSE_M: its final distance to dMMSE_M is at most {DMMSE_FAR_BELOW} x its "
                 "distance to ridge.")
    if not s.finite:
        return Claim.untestable(name, statement, "no finite M")
    small = s.finite[0]
    final = s.outputs[small].isel(step=-1)
    dmmse, ridge = float(final["dist_dmmse"]), float(final["dist_ridge"])
    if not ridge > 0:
        return Claim.untestable(name, statement, f"M = {label(small)}'s distance to ridge is {ridge:.3g}")
    ratio = dmmse / ridge
    return Claim.judged(
        name, statement, ratio <= DMMSE_FAR_BELOW,
        f"M = {label(small)}'s distance to dMMSE_M is {ratio:.2g} x that to ridge",
        {"M": small, "dist_dmmse": dmmse, "dist_ridge": ridge, "ratio": ratio},
    )


def infinite_M_ends_at_ridge(s: ClaimInputs) -> Claim:
    """M = ∞ ends with ridge's OOD loss (the endpoint rule every comparison against M = ∞ needs)."""
    name = "infinite_M_ends_at_ridge"
    statement = f"M = inf ends at ridge: its final OOD loss is within {RIDGE_OOD_TOLERANCE:.0%} of ridge's."
    end = s.endpoint
    if end is None:
        return Claim.untestable(name, statement, "no M = inf run" if math.inf not in s.outputs
                                else "the baselines have no ridge OOD loss")
    return Claim.judged(
        name, statement, end.at_ridge, f"final OOD loss {abs(end.excess):.1%} {'above' if end.excess >= 0 else 'below'} ridge's",
        {"final_ood_loss": end.final_ood_loss, "ridge_ood_loss": end.ridge_ood_loss, "excess": end.excess},
    )


def pca_separates_predictors(s: ClaimInputs) -> Claim:
    """In PC1–PC2 ridge and dMMSE of the smallest M sit apart, and the extreme runs end at their own."""
    name = "pca_separates_predictors"
    small = label(s.finite[0]) if s.finite else "min"
    statement = (f"In PC1-PC2, ridge and dMMSE_M{small} sit apart (gap >= {PCA_SEPARATION} x the median distance of "
                 f"the final points to their own predictor) and the M = {small} and M = inf trajectories end nearer "
                 "their own predictor.")
    if not s.finite or math.inf not in s.outputs:
        return Claim.untestable(name, statement, "no finite M" if not s.finite else "no M = inf run")
    pca = s.pca
    predictors = [str(p) for p in pca["predictor"].values]
    if "ridge" not in predictors or f"dmmse_M{small}" not in predictors:
        return Claim.untestable(name, statement, f"pca.zarr projects no ridge or dmmse_M{small}")
    projection = pca["predictor_projection"].sel(pc=[1, 2])
    ridge_point = projection.sel(predictor="ridge").values
    dmmse_point = projection.sel(predictor=f"dmmse_M{small}").values
    gap = float(np.linalg.norm(ridge_point - dmmse_point))
    end_small = pca["trajectory"].sel(M=s.finite[0], pc=[1, 2]).isel(step=-1).values
    end_inf = pca["trajectory"].sel(M=math.inf, pc=[1, 2]).isel(step=-1).values
    small_to_own = float(np.linalg.norm(end_small - dmmse_point))
    small_to_ridge = float(np.linalg.norm(end_small - ridge_point))
    inf_to_own = float(np.linalg.norm(end_inf - ridge_point))
    inf_to_dmmse = float(np.linalg.norm(end_inf - dmmse_point))
    spread = float(np.median([small_to_own, inf_to_own]))
    holds = gap >= PCA_SEPARATION * spread and small_to_own < small_to_ridge and inf_to_own < inf_to_dmmse
    return Claim.judged(
        name, statement, bool(holds),
        _pca_finding(gap, spread, small, small_to_own < small_to_ridge, inf_to_own < inf_to_dmmse),
        {
            "gap_ridge_dmmse": gap,
            "final_M_small_to_dmmse": small_to_own,
            "final_M_small_to_ridge": small_to_ridge,
            "final_M_inf_to_ridge": inf_to_own,
            "final_M_inf_to_dmmse": inf_to_dmmse,
            "explained_variance_pc1_pc2": [float(v) for v in pca["explained_variance_ratio"].values[:2]],
        },
    )


def _pca_finding(gap: float, spread: float, small: str, small_at_own: bool, inf_at_own: bool) -> str:
    ratio = f"gap {gap / spread:.2g} x the end points' spread" if spread > 0 else f"gap {gap:.3g}"
    if small_at_own and inf_at_own:
        return f"{ratio}, both ends nearer their own predictor"
    wrong = [f"M = {M} ends nearer {other}" for M, own, other in ((small, small_at_own, "ridge"),
                                                                  ("inf", inf_at_own, f"dMMSE_M{small}")) if not own]
    return f"{ratio}; {', '.join(wrong)}"


def transient_ridge(s: ClaimInputs) -> Claim:
    """At least ``min_transient_runs`` intermediate M come close to ridge first, then specialise."""
    name = "transient_ridge"
    statement = (
        f"At least {s.min_transient_runs} intermediate M are transient: they first come at least halfway to ridge "
        f"(closest distance to ridge <= {APPROACH_MAX} x the ridge-dMMSE_M gap, and OOD minimum <= {OOD_DEPTH_MAX} of "
        f"the way from ridge's OOD loss to dMMSE_M's), then the OOD loss rises >= {TRANSIENT_OOD_RISE:.0%} after an "
        f"interior minimum, the distance to ridge rises >= {TRANSIENT_RIDGE_RISE:.0%} after an interior minimum, and "
        f"the distance to dMMSE keeps falling (at the end <= {DMMSE_STILL_FALLING} x its value at the OOD minimum; "
        f"series smoothed over {s.smoothing_window} checkpoints)."
    )
    measures = s.transience
    runs = {label(m.M): asdict(m) for m in measures}
    transient = [label(m.M) for m in measures if m.is_transient]
    evidence = {"transient_M": transient, "runs": runs}
    if len(measures) < s.min_transient_runs:
        return Claim.untestable(name, statement, f"{len(measures)} intermediate M; the claim needs "
                                f"{s.min_transient_runs}", evidence)
    if all(m.approach is None or m.ood_depth is None for m in measures):
        return Claim.untestable(name, statement, "the baselines lack the ridge-dMMSE_M gap or the OOD losses",
                                evidence)
    rises = [label(m.M) for m in measures if m.rises and not m.is_transient]
    finding = (f"transient: M = {', '.join(transient)}" if transient else
               f"none of M = {', '.join(runs)} is transient")
    if rises:
        finding += f"; M = {', '.join(rises)} rises without coming halfway to ridge"
    return Claim.judged(name, statement, len(transient) >= s.min_transient_runs, finding, evidence)
