"""The claims in report order, and checking them on one seed's stores."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ._account import (
    llc_crosses_M_inf,
    llc_grows_with_M_for_dmmse_runs,
    loss_complexity_tradeoff,
    loss_gap_shrinks_with_M,
    tradeoff_predicts_transience,
)
from ._claim import Claim
from ._inputs import ClaimInputs
from ._runs import infinite_M_ends_at_ridge, pca_separates_predictors, smallest_M_ends_at_dmmse, transient_ridge

__all__ = ["ClaimCheck", "CLAIM_CHECKS", "check_claims", "check_seeds"]

ClaimCheck = Callable[[ClaimInputs], Claim]

# The claims in report order. A check takes one seed's stores and returns a Claim that
# holds, does not hold or is not testable (with the reason); adding one is one line here.
CLAIM_CHECKS: tuple[ClaimCheck, ...] = (
    smallest_M_ends_at_dmmse,
    infinite_M_ends_at_ridge,
    pca_separates_predictors,
    transient_ridge,
    loss_gap_shrinks_with_M,
    llc_grows_with_M_for_dmmse_runs,
    llc_crosses_M_inf,
    loss_complexity_tradeoff,
    tradeoff_predicts_transience,
)


def check_claims(inputs: ClaimInputs, checks: tuple[ClaimCheck, ...] = CLAIM_CHECKS) -> list[Claim]:
    """Every check on one seed's stores, in report order (a claim that fails is reported, never raised)."""
    return [check(inputs) for check in checks]


def check_seeds(
    views: Mapping[int | None, ClaimInputs], checks: tuple[ClaimCheck, ...] = CLAIM_CHECKS
) -> dict[int | None, list[Claim]]:
    """:func:`check_claims` mapped over :meth:`ClaimInputs.views` (``seed → claims``; key ``None``: no seed axis)."""
    return {seed: check_claims(inputs, checks) for seed, inputs in views.items()}
