"""The ``llc`` stage: LLC estimates of a run's checkpoints, gathered across runs, and calibration.

Data behind ``ℓ_n``: ``n = llc.num_samples`` fresh sequences from ``q_M``
drawn with the SGLD seed (never the training stream); loss is the
per-prediction MSE the model was trained on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from .checkpoint import checkpoint_path, load_checkpoint
from .config import AUTO, ExperimentConfig, LLCConfig
from .data import sample_sequences, task_set
from .llc import SGLDLearningCoefficient, estimate_llc
from .llc_calibration import PLATEAU_TOLERANCE, choose_epsilon
from .llc_health import FAILED, SPIKE_RATIO, estimate_status, trace_peak_ratio
from .schedule import checkpoint_steps, log_spaced_subset, weight_steps
from .store import provenance_attrs

__all__ = [
    "LLC_RUN_SECTIONS",
    "llc_steps",
    "llc_data",
    "estimate_checkpoint_llc",
    "build_run_llc_dataset",
    "gather_llc_datasets",
    "calibration_steps",
    "calibration_settings",
    "build_calibration_dataset",
]

log = logging.getLogger(__name__)

# The config an llc_run job depends on (its rule's params, so Snakemake's params
# trigger fires on these only): every SGLD setting but the calibration grid. With
# `epsilon: auto` the chosen epsilon reaches llc_run as an input (the calibration
# store), so a changed grid reruns llc_run through that edge; with an explicit
# epsilon the grid does not matter to it.
LLC_RUN_SECTIONS = (
    *(f"llc.{field.name}" for field in dataclasses.fields(LLCConfig) if field.name != "calibration"),
    "seeds.sgld",
    "training.steps",
    "checkpoints",
)


def llc_steps(cfg: ExperimentConfig) -> np.ndarray:
    """Checkpoint steps whose LLC is estimated: log-spaced among the steps with weights, final included.

    Steps before the first linear checkpoint (``checkpoints.linear_interval``)
    are left out: there the weights are far from any minimum of the loss, SGLD
    walks downhill, and the "estimate" comes out negative and meaningless.
    """
    steps = checkpoint_steps(cfg.training.steps, cfg.checkpoints.linear_interval, cfg.checkpoints.log_count)
    with_weights = weight_steps(steps, cfg.checkpoints.weights_every)
    later = with_weights[with_weights >= min(cfg.checkpoints.linear_interval, cfg.training.steps)]
    return log_spaced_subset(later, cfg.llc.num_checkpoints)


def llc_data(cfg: ExperimentConfig, M: float, tasks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fresh sequences from ``q_M``: ``x (n, K, D)``, ``y (n, K)`` float32 tensors."""
    key = 0 if math.isinf(M) else int(M)
    rng = np.random.default_rng([cfg.seeds.sgld, 7, key])
    x, y = sample_sequences(
        rng, task_set(tasks, M), cfg.llc.num_samples, cfg.data.K, cfg.data.D, cfg.data.noise_variance
    )
    return torch.from_numpy(x), torch.from_numpy(y)


def _mse(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output, targets)


def estimate_checkpoint_llc(
    model: torch.nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    settings: LLCConfig,
    *,
    seed: int,
    epsilon: float | None = None,
    gamma: float | None = None,
) -> SGLDLearningCoefficient:
    """Fit the SGLD estimator around ``model``'s weights (``epsilon``/``gamma`` override the config).

    A fit whose chains all diverge returns NaN estimates (it does not raise).
    """
    constructor = {
        key: value for key, value in dataclasses.asdict(settings).items() if key not in ("calibration", "num_checkpoints")
    }
    constructor.update(seed=seed, raise_on_failure=False)
    if epsilon is not None:
        constructor["epsilon"] = epsilon
    if gamma is not None:
        constructor["gamma"] = gamma
    if constructor["epsilon"] == AUTO:
        raise ValueError("llc.epsilon is 'auto': pass the calibrated epsilon (the llc_calibration store's chosen_epsilon)")
    x, y = data
    return estimate_llc(model, _mse, (x, y), y, constructor)


def _settings_attrs(cfg: ExperimentConfig) -> dict[str, float | int | str]:
    return {**cfg.llc.sgld_settings(), "seed": cfg.seeds.sgld}


def _health(estimate: SGLDLearningCoefficient) -> tuple[int, float, str]:
    """(failed chains, trace peak ratio, status) of one fitted estimate."""
    failed = int(np.sum(estimate.failed_chains_))
    peak = float(trace_peak_ratio(estimate.loss_trace_, estimate.init_loss_))
    return failed, peak, str(estimate_status(estimate.llc_mean_, failed, peak))


def build_run_llc_dataset(
    cfg: ExperimentConfig,
    M: float,
    checkpoints_dir: str | Path,
    tasks: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    epsilon: float | None = None,
    epsilon_source: str = "config",
) -> xr.Dataset:
    """LLC of one run at :func:`llc_steps`; dims ``(step, chain, draw)``, scalar coordinate ``M``.

    ``epsilon`` overrides ``llc.epsilon`` (required when that is ``"auto"``: the
    calibrated value; ``epsilon_source`` says where it came from). An estimate
    whose chains all diverge is stored as NaN with its health fields
    (``failed_chains``, ``trace_peak``) and logged as a warning; it never raises.
    """
    steps = llc_steps(cfg)
    data = llc_data(cfg, M, tasks)
    settings = cfg.llc
    used_epsilon = settings.epsilon if epsilon is None else float(epsilon)
    if used_epsilon == AUTO:
        raise ValueError(
            f"experiment {cfg.name}: llc.epsilon is 'auto'; pass the epsilon chosen by the llc_calibration rule"
        )
    n_trace = settings.num_burnin + settings.num_draws
    mean = np.full(len(steps), np.nan)
    std = np.full(len(steps), np.nan)
    init = np.full(len(steps), np.nan)
    failed = np.zeros(len(steps), dtype=np.int64)
    peaks = np.full(len(steps), np.nan)
    per_chain = np.full((len(steps), settings.num_chains), np.nan)
    traces = np.full((len(steps), settings.num_chains, n_trace), np.nan)
    for i, step in enumerate(steps):
        model, _ = load_checkpoint(checkpoint_path(checkpoints_dir, int(step)), device=device)
        estimate = estimate_checkpoint_llc(model, data, settings, seed=cfg.seeds.sgld + int(step), epsilon=used_epsilon)
        mean[i], std[i], init[i] = estimate.llc_mean_, estimate.llc_std_, estimate.init_loss_
        per_chain[i] = estimate.llc_per_chain_
        traces[i] = estimate.loss_trace_
        failed[i], peaks[i], status = _health(estimate)
        log.info(
            "M=%s step %d: LLC %.3f ± %.3f (init loss %.4f, %d failed chains, trace peak %.1fx, %s, %.1f s)",
            M, step, estimate.llc_mean_, estimate.llc_sem_, estimate.init_loss_, failed[i], peaks[i], status,
            estimate.elapsed_s_,
        )
        if status == FAILED:
            log.warning(
                "M=%s step %d: all %d SGLD chains diverged with epsilon=%g, gamma=%g, nbeta=%g, batch_size=%d: "
                "stored as NaN (failed); the workflow goes on. Use a smaller llc.epsilon or 'auto' (docs/llc.md)",
                M, step, settings.num_chains, estimate.epsilon, estimate.gamma, estimate.nbeta, estimate.batch_size,
            )
        elif peaks[i] > SPIKE_RATIO:
            log.warning(
                "M=%s step %d: SGLD loss peaked at %.1fx the start loss (> %.0fx): this estimate "
                "reflects the step size, not the posterior; try a smaller llc.epsilon (docs/llc.md)",
                M, step, peaks[i], SPIKE_RATIO,
            )
        elif failed[i]:
            log.warning(
                "M=%s step %d: %d of %d SGLD chains diverged (epsilon=%g): the estimate is marked unreliable",
                M, step, failed[i], settings.num_chains, estimate.epsilon,
            )
    attrs = {**_settings_attrs(cfg), "epsilon": used_epsilon, "epsilon_source": epsilon_source}
    return xr.Dataset(
        {
            "llc_mean": ("step", mean),
            "llc_std": ("step", std),
            "llc_chain": (("step", "chain"), per_chain),
            "init_loss": ("step", init),
            "loss_trace": (("step", "chain", "draw"), traces),
            "failed_chains": ("step", failed),
            "trace_peak": ("step", peaks),
        },
        coords={
            "M": float(M),
            "step": steps.astype(np.int64),
            "chain": np.arange(settings.num_chains),
            "draw": np.arange(n_trace),
        },
        attrs={**attrs, **provenance_attrs(cfg.name, cfg.to_json())},
    )


def gather_llc_datasets(datasets: Iterable[xr.Dataset]) -> xr.Dataset:
    """Stack per-run LLC datasets along a sorted ``M`` dim (steps missing in a run become NaN)."""
    datasets = sorted(datasets, key=lambda d: float(d["M"]))
    combined = xr.concat(
        [d.expand_dims(M=[float(d["M"])]) for d in datasets], dim="M", join="outer", combine_attrs="override"
    )
    return combined


def calibration_steps(cfg: ExperimentConfig) -> np.ndarray:
    """The checkpoints the calibration sweeps: the first, the middle and the last of :func:`llc_steps`."""
    steps = llc_steps(cfg)
    return np.unique(steps[[0, len(steps) // 2, len(steps) - 1]]).astype(np.int64)


def calibration_settings(cfg: ExperimentConfig) -> LLCConfig:
    """``cfg.llc`` with the calibration's own chain counts (where it sets them)."""
    grid = cfg.llc.calibration
    if grid is None:
        raise ValueError(f"experiment {cfg.name} has no llc.calibration block in its config")
    overrides = {
        key: getattr(grid, key) for key in ("num_chains", "num_burnin", "num_draws") if getattr(grid, key) is not None
    }
    return dataclasses.replace(cfg.llc, **overrides)


def build_calibration_dataset(
    cfg: ExperimentConfig,
    checkpoint_dirs: dict[float, str | Path],
    tasks: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    steps: Iterable[int] | None = None,
) -> xr.Dataset:
    """ε × γ sweep at a few checkpoints of each calibration run, and the ε the rule chooses.

    Dims ``(M, step, epsilon, gamma, chain, draw)``; ``steps`` defaults to
    :func:`calibration_steps`. Each estimate uses the seed ``llc_run`` uses at
    that step. Chains that diverge are a finding: the estimate is NaN, with
    ``failed_chains`` and ``trace_peak`` recorded. The choice
    (:func:`~transient_ridge.llc_calibration.choose_epsilon`, at ``llc.gamma``)
    is the 0-d variable ``chosen_epsilon`` with ``healthy``, ``plateau`` and
    ``accepted`` per ``(M, step, epsilon)`` and the attributes
    ``rule_satisfied`` (0/1) and ``choice_reason``.
    """
    grid = cfg.llc.calibration
    settings = calibration_settings(cfg)
    at = np.asarray(calibration_steps(cfg) if steps is None else sorted(int(s) for s in steps), dtype=np.int64)
    n_trace = settings.num_burnin + settings.num_draws
    shape = (len(grid.M), len(at), len(grid.epsilon), len(grid.gamma))
    mean, std, sem, peak = (np.full(shape, np.nan) for _ in range(4))
    failed = np.zeros(shape, dtype=np.int64)
    traces = np.full((*shape, settings.num_chains, n_trace), np.nan)
    init = np.full(shape[:2], np.nan)
    for a, M in enumerate(grid.M):
        data = llc_data(cfg, M, tasks)
        for s, step in enumerate(at):
            model, _ = load_checkpoint(checkpoint_path(checkpoint_dirs[M], int(step)), device=device)
            for b, epsilon in enumerate(grid.epsilon):
                for c, gamma in enumerate(grid.gamma):
                    estimate = estimate_checkpoint_llc(
                        model, data, settings, seed=cfg.seeds.sgld + int(step), epsilon=epsilon, gamma=gamma
                    )
                    mean[a, s, b, c], std[a, s, b, c], sem[a, s, b, c] = (
                        estimate.llc_mean_, estimate.llc_std_, estimate.llc_sem_,
                    )
                    traces[a, s, b, c] = estimate.loss_trace_
                    init[a, s] = estimate.init_loss_
                    failed[a, s, b, c], peak[a, s, b, c], status = _health(estimate)
                    log.info(
                        "calibration M=%s step %d eps=%g gamma=%g: LLC %.3f ± %.3f, %d failed chains, "
                        "trace peak %.1fx (%s, %.1f s)",
                        M, step, epsilon, gamma, estimate.llc_mean_, estimate.llc_sem_, failed[a, s, b, c],
                        peak[a, s, b, c], status, estimate.elapsed_s_,
                    )
    g = grid.gamma.index(cfg.llc.gamma) if cfg.llc.gamma in grid.gamma else 0
    points = (len(grid.M) * len(at), len(grid.epsilon))
    choice = choose_epsilon(
        np.asarray(grid.epsilon),
        mean[..., g].reshape(points), sem[..., g].reshape(points),
        failed[..., g].reshape(points), peak[..., g].reshape(points),
    )
    if choice.rule_satisfied:
        log.info("calibration chose epsilon=%g: %s", choice.epsilon, choice.reason)
    else:
        log.warning("calibration chose epsilon=%g: %s", choice.epsilon, choice.reason)
    dims3 = ("M", "step", "epsilon")
    dims4 = ("M", "step", "epsilon", "gamma")
    return xr.Dataset(
        {
            "llc_mean": (dims4, mean),
            "llc_std": (dims4, std),
            "llc_sem": (dims4, sem),
            "failed_chains": (dims4, failed),
            "trace_peak": (dims4, peak),
            "loss_trace": ((*dims4, "chain", "draw"), traces),
            "init_loss": (("M", "step"), init),
            "healthy": (dims3, choice.healthy.reshape(shape[:3])),
            "plateau": (dims3, choice.plateau.reshape(shape[:3])),
            "accepted": (dims3, choice.accepted.reshape(shape[:3])),
            "chosen_epsilon": ((), choice.epsilon),
        },
        coords={
            "M": np.array(grid.M, dtype=np.float64),
            "step": at,
            "epsilon": np.array(grid.epsilon),
            "gamma": np.array(grid.gamma),
            "chain": np.arange(settings.num_chains),
            "draw": np.arange(n_trace),
        },
        attrs={
            **_settings_attrs(cfg),
            **{key: getattr(settings, key) for key in ("num_chains", "num_burnin", "num_draws")},
            "chosen_gamma": float(grid.gamma[g]),
            "rule_satisfied": int(choice.rule_satisfied),
            "choice_reason": choice.reason,
            "plateau_tolerance": PLATEAU_TOLERANCE,
            "spike_ratio": SPIKE_RATIO,
            **provenance_attrs(cfg.name, cfg.to_json()),
        },
    )
