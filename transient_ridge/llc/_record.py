"""One LLC estimate at one checkpoint: fit it, diagnose it, and return its record.

:func:`fit_checkpoint` is the one place where a checkpoint's SGLD chains are
sized (in SGLD time, :meth:`~transient_ridge.config.LLCConfig.chain_length`),
run (:class:`~._sgld.SGLDLearningCoefficient`), checked (``_diagnostics``) and
turned into an :class:`LLCRecord`. Both ``llc_run`` and the calibration call
it, so their estimates are the same numbers with the same fields. A fit that
raises is recorded as failed with the error (and logged), like an estimate
whose chains all diverged: one bad fit never stops the stage.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from ..config import AUTO, LLCConfig
from ._diagnostics import FAILED, SPIKE_RATIO, STATUSES, estimate_status, half_drift_z, split_rhat, trace_peak_ratio
from ._sgld import SGLDLearningCoefficient, fit_together

__all__ = ["LLCRecord", "fit_checkpoint", "fit_checkpoints", "mse"]

log = logging.getLogger(__name__)


def mse(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The per-prediction MSE the models are trained on (mean over sequences and tokens)."""
    return F.mse_loss(output, targets)


@dataclasses.dataclass(frozen=True)
class LLCRecord:
    """An LLC estimate with its evidence (Lau et al. 2023: ``λ̂ = nβ (E_w[ℓ_n(w)] − ℓ_n(w*))``).

    Attributes:
        epsilon, gamma, nbeta: the SGLD settings used.
        num_burnin, num_draws: chain length in steps (from the SGLD-time settings).
        llc_mean: the estimate: mean of ``llc_chain`` over healthy chains (NaN: failed).
        llc_std: standard deviation (ddof 1) over healthy chains.
        llc_sem: its standard error, ``llc_std / sqrt(#healthy chains)``.
        llc_chain: ``(C,)`` per-chain estimates, NaN for failed chains.
        init_loss: ``ℓ_n(w*)``.
        loss_trace: ``(C, num_burnin + num_draws)`` SGLD minibatch losses, burn-in first.
        failed_chains: number of chains whose loss or weights became NaN/inf.
        trace_peak: highest minibatch loss over ``init_loss`` (``trace_peak_ratio``).
        rhat: split-R̂ of the post-burn-in draws across chains.
        half_z: second-half minus first-half mean of the draws in Monte Carlo standard errors.
        mala_acceptance: mean MALA acceptance probability over healthy chains and post-burn-in steps.
        status: ``estimate_status`` of the above (sound / not converged / unreliable / failed).
        error: ``""``, or why the estimate failed (every chain diverged, ``ℓ_n(w*)`` not finite,
            or the exception the fit raised).
        elapsed_s: wall time of the fit.
    """

    epsilon: float
    gamma: float
    nbeta: float
    num_burnin: int
    num_draws: int
    llc_mean: float
    llc_std: float
    llc_sem: float
    llc_chain: np.ndarray
    init_loss: float
    loss_trace: np.ndarray
    failed_chains: int
    trace_peak: float
    rhat: float
    half_z: float
    mala_acceptance: float
    status: str
    error: str
    elapsed_s: float

    @classmethod
    def from_estimator(cls, est: SGLDLearningCoefficient) -> LLCRecord:
        """The record of a fitted estimator: its numbers, and the diagnostics of its post-burn-in draws."""
        burnin = int(est.num_burnin)
        draws = est.loss_trace_[:, burnin:]
        healthy = ~est.failed_chains_
        # diagnostics over the healthy chains only (a diverged chain is counted by failed_chains)
        rhat = float(split_rhat(draws[healthy])) if healthy.any() else math.nan
        half_z = float(half_drift_z(draws[healthy])) if healthy.any() else math.nan
        peak = float(trace_peak_ratio(est.loss_trace_, est.init_loss_))
        failed = int(np.sum(est.failed_chains_))
        acceptance = est.mala_acceptance_[healthy]
        mala = float(acceptance.mean()) if acceptance.size and np.isfinite(acceptance).all() else math.nan
        return cls(
            epsilon=float(est.epsilon), gamma=float(est.gamma), nbeta=float(est.nbeta),
            num_burnin=burnin, num_draws=int(est.num_draws),
            llc_mean=float(est.llc_mean_), llc_std=float(est.llc_std_), llc_sem=float(est.llc_sem_),
            llc_chain=np.asarray(est.llc_per_chain_, dtype=np.float64), init_loss=float(est.init_loss_),
            loss_trace=np.asarray(est.loss_trace_, dtype=np.float64), failed_chains=failed, trace_peak=peak,
            rhat=rhat, half_z=half_z, mala_acceptance=mala,
            status=str(estimate_status(est.llc_mean_, failed, peak, rhat, half_z)),
            error=str(est.failure_), elapsed_s=float(est.elapsed_s_),
        )

    @classmethod
    def failed(
        cls, *, epsilon: float, gamma: float, nbeta: float, num_chains: int, num_burnin: int, num_draws: int, error: str
    ) -> LLCRecord:
        """The record of an estimate that was not made (the fit raised, or it was known to fail): NaN numbers."""
        nan = math.nan
        return cls(
            epsilon=float(epsilon), gamma=float(gamma), nbeta=float(nbeta), num_burnin=num_burnin, num_draws=num_draws,
            llc_mean=nan, llc_std=nan, llc_sem=nan, llc_chain=np.full(num_chains, nan), init_loss=nan,
            loss_trace=np.full((num_chains, num_burnin + num_draws), nan), failed_chains=num_chains, trace_peak=nan,
            rhat=nan, half_z=nan, mala_acceptance=nan, status=FAILED, error=error, elapsed_s=0.0,
        )

    @classmethod
    def from_store(cls, point: xr.Dataset) -> LLCRecord:
        """The record stored at one point of an LLC store (a selection down to dims ``chain``, ``draw``).

        The inverse of :func:`~._stage.records_variables` for one record: the trace's
        NaN padding (to the longest trace of the store) is cut to ``num_burnin + num_draws``
        steps, ``error`` is not stored per point and comes back empty.
        """
        burnin, draws = int(point["num_burnin"]), int(point["num_draws"])
        code = int(point["status"])
        return cls(
            epsilon=float(point["epsilon"]), gamma=float(point["gamma"]), nbeta=float(point.attrs["nbeta"]),
            num_burnin=burnin, num_draws=draws,
            llc_mean=float(point["llc_mean"]), llc_std=float(point["llc_std"]), llc_sem=float(point["llc_sem"]),
            llc_chain=np.asarray(point["llc_chain"].values, dtype=np.float64), init_loss=float(point["init_loss"]),
            loss_trace=np.asarray(point["loss_trace"].values[:, : burnin + draws], dtype=np.float64),
            failed_chains=int(point["failed_chains"]), trace_peak=float(point["trace_peak"]),
            rhat=float(point["rhat"]), half_z=float(point["half_z"]), mala_acceptance=float(point["mala_acceptance"]),
            status=STATUSES[code] if code >= 0 else FAILED, error="", elapsed_s=float(point["elapsed_s"]),
        )

    def summary(self) -> str:
        """One log line: estimate, diagnostics, status."""
        return (
            f"eps={self.epsilon:g} gamma={self.gamma:g} ({self.num_burnin} + {self.num_draws} steps): "
            f"LLC {self.llc_mean:.4g} ± {self.llc_sem:.2g}, init loss {self.init_loss:.4g}, "
            f"{self.failed_chains} failed chains, peak {self.trace_peak:.3g}x, R-hat {self.rhat:.3f}, "
            f"half z {self.half_z:+.2f}, MALA {self.mala_acceptance:.3f}: {self.status} ({self.elapsed_s:.1f} s)"
            + (f" [{self.error}]" if self.error else "")
        )


def fit_checkpoint(
    model: torch.nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    settings: LLCConfig,
    *,
    seed: int,
    epsilon: float,
    gamma: float | None = None,
    label: str = "",
) -> LLCRecord:
    """Estimate the LLC around ``model``'s weights and return its :class:`LLCRecord`; never raises on a bad fit.

    Args:
        model: the checkpoint's model (``model(x, y) -> (n, K)`` predictions).
        data: ``x (n, K, D)``, ``y (n, K)``: the ``n`` samples behind ``ℓ_n``.
        settings: the experiment's ``llc`` block (ν, nβ, chains, SGLD-time lengths, batch).
        seed: the SGLD seed of this estimate.
        epsilon: the step size (a number: the calibrated or configured one).
        gamma: γ (default ``settings.gamma``).
        label: who the estimate is for, for the log (``"M=8 step 2000"``).

    Returns:
        The record. Chains of ``settings.chain_length(epsilon, gamma)`` steps; a fit whose
        chains all diverge or whose ``ℓ_n(w*)`` is not finite comes back with status
        ``failed`` and the reason in ``error``; so does one that raises (logged with its
        traceback). Status and warnings are logged.
    """
    return fit_checkpoints([model], data, settings, seeds=[seed], epsilon=epsilon, gamma=gamma, labels=[label])[0]


def fit_checkpoints(
    models: list[torch.nn.Module],
    data: tuple[torch.Tensor, torch.Tensor],
    settings: LLCConfig,
    *,
    seeds: list[int],
    epsilon: float,
    gamma: float | None = None,
    labels: list[str] | None = None,
) -> list[LLCRecord]:
    """:func:`fit_checkpoint` of several checkpoints on the same data, their chains run as one computation.

    The estimates are those of fitting each checkpoint alone (same seeds, same chains, up to
    float rounding: :func:`~._sgld.fit_together`); stacking them only makes the step's matrix
    products larger. If the joint fit raises, each checkpoint is fitted alone, so one bad
    checkpoint is recorded as failed without taking the others with it.

    Args:
        models: the checkpoints' models (one architecture).
        seeds: the SGLD seed of each estimate.
        labels: who each estimate is for, for the log.

    Returns:
        One :class:`LLCRecord` per model, in order.
    """
    if epsilon == AUTO or not isinstance(epsilon, (int, float)):
        raise ValueError(f"epsilon={epsilon!r}: pass the calibrated epsilon (the llc_calibration store's chosen_epsilon)")
    if len(seeds) != len(models):
        raise ValueError(f"need one seed per model, got {len(seeds)} seeds for {len(models)} models")
    labels = list(labels) if labels is not None else [""] * len(models)
    g = settings.gamma if gamma is None else float(gamma)
    num_burnin, num_draws = settings.chain_length(float(epsilon), g)

    def estimator(seed: int) -> SGLDLearningCoefficient:
        return SGLDLearningCoefficient(
            epsilon=float(epsilon), gamma=g, nbeta=settings.nbeta, num_chains=settings.num_chains,
            num_burnin=num_burnin, num_draws=num_draws, steps_between_draws=settings.steps_between_draws,
            batch_size=settings.batch_size, seed=seed, num_samples=settings.num_samples, raise_on_failure=False,
        )

    x, y = data
    records: list[LLCRecord] = []
    try:
        records = [LLCRecord.from_estimator(est)
                   for est in fit_together([estimator(s) for s in seeds], models, mse, (x, y), y)]
    except Exception as error:  # noqa: BLE001 - one bad fit is a finding, stored as failed; the stage goes on
        if len(models) > 1:
            log.warning("%d LLC fits together raised (%s: %s); fitting each alone", len(models),
                        type(error).__name__, error)
            return [fit_checkpoint(model, data, settings, seed=seed, epsilon=epsilon, gamma=gamma, label=label)
                    for model, seed, label in zip(models, seeds, labels)]
        log.exception("%s: the LLC fit raised; recorded as failed", labels[0] or "LLC")
        records = [LLCRecord.failed(
            epsilon=float(epsilon), gamma=g, nbeta=settings.nbeta, num_chains=settings.num_chains,
            num_burnin=num_burnin, num_draws=num_draws, error=f"{type(error).__name__}: {error}",
        )]
    for label, record in zip(labels, records):
        _log_record(label, record, settings.num_chains)
    return records


def _log_record(label: str, record: LLCRecord, num_chains: int) -> None:
    log.info("%s: %s", label, record.summary())
    if record.status == FAILED:
        log.warning(
            "%s: no LLC estimate (%s) with epsilon=%g, gamma=%g: stored as NaN (failed); the workflow goes on. "
            "Use a smaller llc.epsilon or 'auto' (docs/llc.md)", label, record.error, record.epsilon, record.gamma,
        )
    elif record.trace_peak > SPIKE_RATIO:
        log.warning(
            "%s: SGLD loss peaked at %.1fx the start loss (> %.0fx): this estimate reflects the step size, not the "
            "posterior; try a smaller llc.epsilon (docs/llc.md)", label, record.trace_peak, SPIKE_RATIO,
        )
    elif record.failed_chains:
        log.warning(
            "%s: %d of %d SGLD chains diverged (epsilon=%g): the estimate is marked unreliable",
            label, record.failed_chains, num_chains, record.epsilon,
        )
    elif record.status != "sound":
        log.warning(
            "%s: the chains have not converged (split R-hat %.3f, half-drift z %+.2f): the estimate is marked "
            "'%s'; longer chains (llc.burnin_time, llc.draw_time) or a smaller epsilon may help",
            label, record.rhat, record.half_z, record.status,
        )
