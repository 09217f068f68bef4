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

from ._calibration import PLATEAU_TOLERANCE, EpsilonChoice, choose_epsilon
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
from ._record import LLCRecord, fit_checkpoint, mse
from ._sgld import SGLDLearningCoefficient, chain_seeds, estimate_llc, mala_log_acceptance
from ._stage import (
    LLC_RUN_SECTIONS,
    build_calibration_dataset,
    build_run_llc_dataset,
    calibration_settings,
    calibration_steps,
    checkpoint_losses,
    gather_llc_datasets,
    llc_data,
    llc_steps,
    records_variables,
)
from ._tables import calibration_report, llc_health_report, t_crit_report
from ._trend import SHAPE_TOLERANCE, TOO_FEW, curve_shape, llc_over_training_report

__all__ = [
    "PLATEAU_TOLERANCE", "EpsilonChoice", "choose_epsilon",
    "FAILED", "HALF_BATCHES", "HALF_Z_MAX", "NO_ESTIMATE", "NOT_CONVERGED", "RHAT_MAX", "SOUND", "SPIKE_RATIO",
    "STATUSES", "UNRELIABLE", "estimate_status", "half_drift_z", "split_rhat", "trace_peak_ratio",
    "Estimate", "Estimates", "estimate_at", "final_estimate", "read_estimates",
    "LLCRecord", "fit_checkpoint", "mse",
    "calibration_report", "llc_health_report", "t_crit_report",
    "SGLDLearningCoefficient", "chain_seeds", "estimate_llc", "mala_log_acceptance",
    "LLC_RUN_SECTIONS", "build_calibration_dataset", "build_run_llc_dataset", "calibration_settings",
    "calibration_steps", "checkpoint_losses", "gather_llc_datasets", "llc_data", "llc_steps", "records_variables",
    "SHAPE_TOLERANCE", "TOO_FEW", "curve_shape", "llc_over_training_report",
]
