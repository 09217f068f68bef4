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
from .config import ExperimentConfig, LLCConfig
from .data import sample_sequences, task_set
from .llc import SGLDLearningCoefficient, estimate_llc
from .llc_health import SPIKE_RATIO, trace_peak_ratio
from .schedule import checkpoint_steps, log_spaced_subset, weight_steps
from .store import provenance_attrs

__all__ = [
    "llc_steps",
    "llc_data",
    "estimate_checkpoint_llc",
    "build_run_llc_dataset",
    "gather_llc_datasets",
    "build_calibration_dataset",
]

log = logging.getLogger(__name__)


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
    """Fit the SGLD estimator around ``model``'s weights (``epsilon``/``gamma`` override the config)."""
    constructor = {
        key: value for key, value in dataclasses.asdict(settings).items() if key not in ("calibration", "num_checkpoints")
    }
    constructor.update(seed=seed)
    if epsilon is not None:
        constructor["epsilon"] = epsilon
    if gamma is not None:
        constructor["gamma"] = gamma
    x, y = data
    return estimate_llc(model, _mse, (x, y), y, constructor)


def _settings_attrs(cfg: ExperimentConfig) -> dict[str, float | int]:
    return {**cfg.llc.sgld_settings(), "seed": cfg.seeds.sgld}


def build_run_llc_dataset(
    cfg: ExperimentConfig,
    M: float,
    checkpoints_dir: str | Path,
    tasks: np.ndarray,
    *,
    device: torch.device | str = "cpu",
) -> xr.Dataset:
    """LLC of one run at :func:`llc_steps`; dims ``(step, chain, draw)``, scalar coordinate ``M``."""
    steps = llc_steps(cfg)
    data = llc_data(cfg, M, tasks)
    settings = cfg.llc
    n_trace = settings.num_burnin + settings.num_draws
    mean = np.full(len(steps), np.nan)
    std = np.full(len(steps), np.nan)
    init = np.full(len(steps), np.nan)
    per_chain = np.full((len(steps), settings.num_chains), np.nan)
    traces = np.full((len(steps), settings.num_chains, n_trace), np.nan)
    for i, step in enumerate(steps):
        model, _ = load_checkpoint(checkpoint_path(checkpoints_dir, int(step)), device=device)
        estimate = estimate_checkpoint_llc(model, data, settings, seed=cfg.seeds.sgld + int(step))
        mean[i], std[i], init[i] = estimate.llc_mean_, estimate.llc_std_, estimate.init_loss_
        per_chain[i] = estimate.llc_per_chain_
        traces[i] = estimate.loss_trace_
        log.info(
            "M=%s step %d: LLC %.3f ± %.3f (init loss %.4f, %d failed chains, %.1f s)",
            M, step, estimate.llc_mean_, estimate.llc_sem_, estimate.init_loss_,
            int(np.sum(estimate.failed_chains_)), estimate.elapsed_s_,
        )
        peak = float(trace_peak_ratio(estimate.loss_trace_, estimate.init_loss_))
        if peak > SPIKE_RATIO:
            log.warning(
                "M=%s step %d: SGLD loss peaked at %.1fx the start loss (> %.0fx): this estimate "
                "reflects the step size, not the posterior; try a smaller llc.epsilon (docs/llc.md)",
                M, step, peak, SPIKE_RATIO,
            )
    return xr.Dataset(
        {
            "llc_mean": ("step", mean),
            "llc_std": ("step", std),
            "llc_chain": (("step", "chain"), per_chain),
            "init_loss": ("step", init),
            "loss_trace": (("step", "chain", "draw"), traces),
        },
        coords={
            "M": float(M),
            "step": steps.astype(np.int64),
            "chain": np.arange(settings.num_chains),
            "draw": np.arange(n_trace),
        },
        attrs={**_settings_attrs(cfg), **provenance_attrs(cfg.name, cfg.to_json())},
    )


def gather_llc_datasets(datasets: Iterable[xr.Dataset]) -> xr.Dataset:
    """Stack per-run LLC datasets along a sorted ``M`` dim (steps missing in a run become NaN)."""
    datasets = sorted(datasets, key=lambda d: float(d["M"]))
    combined = xr.concat(
        [d.expand_dims(M=[float(d["M"])]) for d in datasets], dim="M", join="outer", combine_attrs="override"
    )
    return combined


def build_calibration_dataset(
    cfg: ExperimentConfig,
    checkpoint_dirs: dict[float, str | Path],
    tasks: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    step: int | None = None,
) -> xr.Dataset:
    """ε × γ sweep on one checkpoint of each calibration run: dims ``(M, epsilon, gamma, chain, draw)``.

    ``step`` defaults to the final checkpoint (what the ``llc_calibration`` rule uses);
    an earlier step with weights checks the settings where training has not settled.
    """
    grid = cfg.llc.calibration
    if grid is None:
        raise ValueError(f"experiment {cfg.name} has no llc.calibration grid in its config")
    settings = cfg.llc
    final = int(cfg.training.steps) if step is None else int(step)
    n_trace = settings.num_burnin + settings.num_draws
    shape = (len(grid.M), len(grid.epsilon), len(grid.gamma))
    mean, std = np.full(shape, np.nan), np.full(shape, np.nan)
    traces = np.full((*shape, settings.num_chains, n_trace), np.nan)
    init = np.full(len(grid.M), np.nan)
    for a, M in enumerate(grid.M):
        model, _ = load_checkpoint(checkpoint_path(checkpoint_dirs[M], final), device=device)
        data = llc_data(cfg, M, tasks)
        for b, epsilon in enumerate(grid.epsilon):
            for c, gamma in enumerate(grid.gamma):
                try:
                    estimate = estimate_checkpoint_llc(
                        model, data, settings, seed=cfg.seeds.sgld, epsilon=epsilon, gamma=gamma
                    )
                except RuntimeError as exc:  # every chain diverged: a finding, not a crash
                    log.warning("M=%s eps=%g gamma=%g: %s", M, epsilon, gamma, exc)
                    continue
                mean[a, b, c], std[a, b, c] = estimate.llc_mean_, estimate.llc_std_
                traces[a, b, c] = estimate.loss_trace_
                init[a] = estimate.init_loss_
                log.info("calibration M=%s eps=%g gamma=%g: LLC %.3f", M, epsilon, gamma, estimate.llc_mean_)
    return xr.Dataset(
        {
            "llc_mean": (("M", "epsilon", "gamma"), mean),
            "llc_std": (("M", "epsilon", "gamma"), std),
            "loss_trace": (("M", "epsilon", "gamma", "chain", "draw"), traces),
            "init_loss": ("M", init),
        },
        coords={
            "M": np.array(grid.M, dtype=np.float64),
            "epsilon": np.array(grid.epsilon),
            "gamma": np.array(grid.gamma),
            "chain": np.arange(settings.num_chains),
            "draw": np.arange(n_trace),
        },
        attrs={**_settings_attrs(cfg), "step": final, **provenance_attrs(cfg.name, cfg.to_json())},
    )
