"""The ``claims`` rule's whole report from an experiment's stores: the checks, then the LLC sections."""

from __future__ import annotations

from collections.abc import Mapping

import xarray as xr

from ..llc import llc_health_report, llc_over_training_report, t_crit_report
from ._check import CLAIM_CHECKS, ClaimCheck, check_seeds
from ._inputs import ClaimInputs
from ._llc_sections import calibration_markdown, health_markdown, llc_over_training_markdown, t_crit_markdown
from ._report import Report

__all__ = ["claims_report"]


def claims_report(
    experiment: str,
    outputs: Mapping[float, xr.Dataset],
    baselines: xr.Dataset,
    pca: xr.Dataset,
    llc: xr.Dataset,
    *,
    smoothing_window: int = 1,
    min_transient_runs: int = 2,
    calibration: dict | None = None,
    calibration_seed: int | None = None,
    checks: tuple[ClaimCheck, ...] = CLAIM_CHECKS,
) -> Report:
    """Check every claim on each seed's stores and add the LLC sections (over training, at t_crit, the
    calibration, the estimates' diagnostics).

    Args:
        experiment: the experiment's name.
        outputs: ``M → outputs.zarr`` (stacked over ``seed`` by ``seeds.runs_by_M`` with a seed axis).
        baselines, pca, llc: the experiment's ``baselines.zarr``, ``pca.zarr`` and ``llc.zarr``.
        smoothing_window: odd number of checkpoints the transience measure smooths over.
        min_transient_runs: how many intermediate M the transient claim needs.
        calibration: ``llc.calibration_report`` of ``llc_calibration.zarr`` (``None``: none).
        calibration_seed: the train seed the calibration measured (named in its heading).
        checks: the claims, in report order.

    Returns:
        The :class:`Report` (``.markdown()``, ``.json()``); sections can still be added.
    """
    views = ClaimInputs.views(outputs, baselines, pca, llc, smoothing_window=smoothing_window,
                              min_transient_runs=min_transient_runs)
    report = Report(experiment, check_seeds(views, checks))

    def over_training(seed: int | None) -> tuple[list[str], object]:
        table = llc_over_training_report(views[seed].llc)
        return llc_over_training_markdown(table), table

    def at_t_crit(seed: int | None) -> tuple[list[str], object]:
        rows = t_crit_report(views[seed].llc, views[seed].outputs)
        return t_crit_markdown(rows, views[seed].observed_transience), rows

    def health(seed: int | None) -> tuple[list[str], object]:
        table = llc_health_report(views[seed].llc)
        return health_markdown(table), table

    report.add_per_seed("llc_over_training", "LLC over training", over_training)
    report.add_per_seed("llc_at_t_crit", "LLC at t_crit and at the end", at_t_crit)
    where = f" (calibrated on the runs of train seed {calibration_seed})" if calibration_seed is not None else ""
    report.add("llc_calibration", f"LLC step size: calibration{where}",
               calibration_markdown(calibration) if calibration else [], calibration)
    report.add_per_seed("llc_health", "LLC estimates: diagnostics", health)
    return report
