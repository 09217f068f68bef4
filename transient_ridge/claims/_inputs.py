"""What every claim reads: one seed's stores, with the measurements several claims share read once.

:meth:`ClaimInputs.views` is the one place the seed axis is handled: it splits an
experiment's stores into one :class:`ClaimInputs` per train seed (key ``None``
without a seed axis); every check then sees one seed's runs and that seed's M = ∞.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import xarray as xr

from ..config import format_task_count
from ..llc import Estimate, Estimates, final_estimate, read_estimates
from ..seeds import seeds_of, select_seed
from ._transience import TransienceMeasure, measure_transience

__all__ = ["ClaimInputs", "Endpoint", "RIDGE_OOD_TOLERANCE", "dmmse_like_runs", "label"]

RIDGE_OOD_TOLERANCE = 0.05  # M = inf "ends at ridge": final OOD loss within 5 % of ridge's


def label(M: float) -> str:
    """``"16"``, ``"inf"``: how claims name a run."""
    return format_task_count(float(M))


def dmmse_like_runs(outputs: Mapping[float, xr.Dataset]) -> list[float]:
    """Finite M whose final checkpoint is nearer dMMSE_M than ridge (``dist_dmmse < dist_ridge``), ascending."""
    return sorted(
        M for M, ds in outputs.items()
        if math.isfinite(M) and float(ds["dist_dmmse"][-1]) < float(ds["dist_ridge"][-1])
    )


@dataclass(frozen=True)
class Endpoint:
    """Where M = ∞ ends: its final OOD loss against ridge's (``excess`` = ratio − 1)."""

    final_ood_loss: float
    ridge_ood_loss: float

    @property
    def excess(self) -> float:
        return self.final_ood_loss / self.ridge_ood_loss - 1.0

    @property
    def at_ridge(self) -> bool:
        """The endpoint rule: the final OOD loss is within :data:`RIDGE_OOD_TOLERANCE` of ridge's."""
        return self.excess <= RIDGE_OOD_TOLERANCE


@dataclass(frozen=True, eq=False)  # datasets do not compare to a bool
class ClaimInputs:
    """One seed's stores, what every claim function reads.

    Attributes:
        outputs: ``M → outputs.zarr`` dataset of that run (one seed: dims ``(step, …)``).
        baselines: ``baselines.zarr``.
        pca: ``pca.zarr`` (``trajectory(M, step, pc)``: one seed's view).
        llc: ``llc.zarr`` (``llc_mean(M, step)``: one seed's view).
        smoothing_window: odd number of checkpoints smoothed over (``figures.smoothing_window``).
        min_transient_runs: how many intermediate M the transient claim needs.
    """

    outputs: Mapping[float, xr.Dataset]
    baselines: xr.Dataset
    pca: xr.Dataset
    llc: xr.Dataset
    smoothing_window: int = 1
    min_transient_runs: int = 2

    @classmethod
    def views(
        cls,
        outputs: Mapping[float, xr.Dataset],
        baselines: xr.Dataset,
        pca: xr.Dataset,
        llc: xr.Dataset,
        *,
        smoothing_window: int = 1,
        min_transient_runs: int = 2,
    ) -> dict[int | None, ClaimInputs]:
        """Each train seed's view of an experiment's stores: ``{seed: inputs}``, seeds ascending, or
        ``{None: inputs}`` when no store has a ``seed`` dim (``outputs`` stacked by ``seeds.runs_by_M``)."""
        seeds = seeds_of(outputs, pca, llc)
        return {
            seed: cls(
                outputs if seed is None else select_seed(outputs, seed), baselines,
                pca if seed is None else select_seed(pca, seed), llc if seed is None else select_seed(llc, seed),
                smoothing_window, min_transient_runs,
            )
            for seed in (seeds or [None])
        }

    @property
    def finite(self) -> list[float]:
        """The finite M with a run, ascending."""
        return [M for M in sorted(self.outputs) if math.isfinite(M)]

    @cached_property
    def dmmse_like(self) -> list[float]:
        """:func:`dmmse_like_runs` of this seed."""
        return dmmse_like_runs(self.outputs)

    @cached_property
    def llc_estimates(self) -> Estimates:
        """Every LLC estimate of this seed (``llc.read_estimates``), read once for the claims that need it."""
        return read_estimates(self.llc)

    def final(self, M: float) -> Estimate:
        """Run ``M``'s final LLC estimate (``llc.final_estimate``)."""
        return final_estimate(self.llc_estimates, M)

    @cached_property
    def transience(self) -> list[TransienceMeasure]:
        """:func:`measure_transience` of every intermediate M, measured once for the claims that need it."""
        return [measure_transience(self.outputs[M], self.smoothing_window, self.baselines) for M in self.finite[1:]]

    @cached_property
    def observed_transience(self) -> dict[float, bool]:
        """Intermediate M → whether the run is transient (:func:`measure_transience`)."""
        return {m.M: m.is_transient for m in self.transience}

    @cached_property
    def endpoint(self) -> Endpoint | None:
        """Where M = ∞ ends (``None`` without an M = ∞ run or without ridge's OOD loss)."""
        if math.inf not in self.outputs or "loss_ridge_ood" not in self.baselines:
            return None
        return Endpoint(float(self.outputs[math.inf]["loss_ood"][-1]), float(self.baselines["loss_ridge_ood"].mean()))
