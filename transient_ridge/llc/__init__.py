"""The local learning coefficient (LLC): estimator, records, diagnostics, calibration, stage, reader, reports.

One idea per private module, re-exported here (docs/llc.md has the whole story):

* ``_sgld``: :class:`SGLDLearningCoefficient`, the batched-chain SGLD estimator
  (Lau et al. 2023), with the MALA acceptance of its steps;
* ``_diagnostics``: health (divergence, spikes) and convergence (split-R̂, the
  half-drift test) of one estimate, and :func:`estimate_status`, the one status;
* ``_record``: :func:`fit_checkpoint`, one checkpoint's estimate as an
  :class:`LLCRecord` (chains sized in SGLD time, never raises on a bad fit);
* ``_calibration``: :func:`choose_epsilon`, the step-size rule;
* ``_stage``: the ``llc_run`` / ``llc`` / ``llc_calibration`` rules' builders;
* ``_read``: :func:`read_estimates` and :func:`final_estimate`, the one reader of
  LLC stores (claims, figures and the trend all use it);
* ``_trend``: the shape of the LLC over training (Hoogland et al. 2024);
* ``_tables``: the tables claims.md reports (every estimate's health, the
  calibration, the LLC near t_crit against the end).

This package measures and returns tables; it judges no claim and never imports
``transient_ridge.claims`` (which reads it).
"""

from ..config import LLC_RUN_SECTIONS
from ._calibration import PLATEAU_TOLERANCE, EpsilonChoice, choose_epsilon
from ._calibration_store import combine_calibration_points
from ._gather import gather_llc_datasets
from ._steps import calibration_settings, calibration_steps, llc_steps
from ._diagnostics import (
    FAILED,
    HALF_BATCHES,
    HALF_Z_MAX,
    NO_ESTIMATE,
    NOT_CONVERGED,
    RHAT_MAX,
    SOUND,
    SPIKE_RATIO,
    STATUSES,
    UNRELIABLE,
    estimate_status,
    half_drift_z,
    split_rhat,
    trace_peak_ratio,
)
from ._read import Estimate, Estimates, estimate_at, final_estimate, read_estimates
from ._tables import calibration_report, llc_health_report, t_crit_report
from ._trend import SHAPE_TOLERANCE, TOO_FEW, curve_shape, llc_over_training_report

# The estimator, the records and the stage need torch; figures, claims and the
# calibration rule's choice do not, and importing torch costs ~2 s per job. These
# names are imported on first use (PEP 562).
_TORCH_BACKED = {
    "LLCRecord": "._record", "fit_checkpoint": "._record", "fit_checkpoints": "._record", "mse": "._record",
    "SGLDLearningCoefficient": "._sgld", "chain_seeds": "._sgld", "estimate_llc": "._sgld",
    "fit_together": "._sgld", "mala_log_acceptance": "._sgld",
    "build_calibration_dataset": "._stage", "build_calibration_point": "._stage", "build_run_llc_dataset": "._stage",
    "checkpoint_losses": "._stage", "llc_data": "._stage", "records_variables": "._stage",
}


def __getattr__(name: str) -> object:
    if name in _TORCH_BACKED:
        import importlib

        value = getattr(importlib.import_module(_TORCH_BACKED[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PLATEAU_TOLERANCE", "EpsilonChoice", "choose_epsilon",
    "FAILED", "HALF_BATCHES", "HALF_Z_MAX", "NO_ESTIMATE", "NOT_CONVERGED", "RHAT_MAX", "SOUND", "SPIKE_RATIO",
    "STATUSES", "UNRELIABLE", "estimate_status", "half_drift_z", "split_rhat", "trace_peak_ratio",
    "Estimate", "Estimates", "estimate_at", "final_estimate", "read_estimates",
    "LLCRecord", "fit_checkpoint", "fit_checkpoints", "mse",
    "calibration_report", "llc_health_report", "t_crit_report",
    "SGLDLearningCoefficient", "chain_seeds", "estimate_llc", "fit_together", "mala_log_acceptance",
    "LLC_RUN_SECTIONS", "build_calibration_dataset", "build_calibration_point", "build_run_llc_dataset",
    "calibration_settings", "combine_calibration_points",
    "calibration_steps", "checkpoint_losses", "gather_llc_datasets", "llc_data", "llc_steps", "records_variables",
    "SHAPE_TOLERANCE", "TOO_FEW", "curve_shape", "llc_over_training_report",
]
