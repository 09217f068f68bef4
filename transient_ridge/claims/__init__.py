"""The paper's findings, checked on an experiment's own stores: every claim, its verdict, the report.

A claim holds, does not hold, or is not testable (and says why); a claim with
nothing to compare is never "holds". One idea per private module, re-exported here:

* ``_claim``: :class:`Claim` and its three verdicts, :class:`Tally` (every verdict
  counted) and :func:`summarize` (one claim over seeds);
* ``_inputs``: :class:`ClaimInputs`, one seed's stores with the shared measurements
  read once; :meth:`ClaimInputs.views` is the one place the seed axis is handled;
* ``_transience``: :func:`measure_transience`, "ridge first, then dMMSE_M" measured;
* ``_runs``: where the runs end, the PCA, the transient ridge (Fig. 1);
* ``_account``: the loss–complexity account of Fig. 3, one claim per statement;
* ``_check``: :data:`CLAIM_CHECKS` in report order, :func:`check_claims` (one seed)
  and :func:`check_seeds` (mapped over the seeds);
* ``_report``: :class:`Report`, the section-based builder of claims.md and claims.json;
* ``_llc_sections``: the LLC tables of ``transient_ridge.llc`` as report sections;
* ``_build``: :func:`claims_report`, what the ``claims`` rule writes;
* :mod:`.docs`: ``python -m transient_ridge.claims.docs``, the docs' marked blocks
  rewritten from claims.json.

Thresholds (module constants) are part of the claims' wording in claims.md.
"""

from ._account import (
    SIGNIFICANCE,
    llc_crosses_M_inf,
    llc_grows_with_M_for_dmmse_runs,
    loss_complexity_tradeoff,
    loss_gap_shrinks_with_M,
    steps_between,
    trend,
    tradeoff_predicts_transience,
)
from ._build import claims_report
from ._check import CLAIM_CHECKS, ClaimCheck, check_claims, check_seeds
from ._claim import FAILS, HOLDS, NOT_TESTABLE, VERDICTS, Claim, ClaimOverSeeds, Tally, summarize
from ._inputs import RIDGE_OOD_TOLERANCE, ClaimInputs, Endpoint, dmmse_like_runs
from ._llc_sections import calibration_markdown, health_markdown, llc_over_training_markdown, t_crit_markdown
from ._report import Report, Section, json_safe
from ._runs import (
    DMMSE_FAR_BELOW,
    PCA_SEPARATION,
    infinite_M_ends_at_ridge,
    pca_separates_predictors,
    smallest_M_ends_at_dmmse,
    transient_ridge,
)
from ._transience import (
    APPROACH_MAX,
    DMMSE_STILL_FALLING,
    OOD_DEPTH_MAX,
    TRANSIENT_OOD_RISE,
    TRANSIENT_RIDGE_RISE,
    TransienceMeasure,
    measure_transience,
    ood_losses,
    ridge_dmmse_gap,
)

__all__ = [
    "HOLDS", "FAILS", "NOT_TESTABLE", "VERDICTS", "Claim", "ClaimOverSeeds", "Tally", "summarize",
    "RIDGE_OOD_TOLERANCE", "ClaimInputs", "Endpoint", "dmmse_like_runs",
    "APPROACH_MAX", "DMMSE_STILL_FALLING", "OOD_DEPTH_MAX", "TRANSIENT_OOD_RISE", "TRANSIENT_RIDGE_RISE",
    "TransienceMeasure", "measure_transience", "ood_losses", "ridge_dmmse_gap",
    "DMMSE_FAR_BELOW", "PCA_SEPARATION", "smallest_M_ends_at_dmmse", "infinite_M_ends_at_ridge",
    "pca_separates_predictors", "transient_ridge",
    "SIGNIFICANCE", "trend", "steps_between", "loss_gap_shrinks_with_M", "llc_grows_with_M_for_dmmse_runs",
    "llc_crosses_M_inf", "loss_complexity_tradeoff", "tradeoff_predicts_transience",
    "CLAIM_CHECKS", "ClaimCheck", "check_claims", "check_seeds",
    "Report", "Section", "json_safe",
    "calibration_markdown", "health_markdown", "llc_over_training_markdown", "t_crit_markdown",
    "claims_report",
]
