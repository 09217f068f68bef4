"""The ``llc`` stage: LLC records of a run's checkpoints, gathered across runs, and the ε calibration.

Data behind ``ℓ_n``: ``n = llc.num_samples`` fresh sequences from ``q_M``
drawn with the SGLD seed (never the training stream); loss is the
per-prediction MSE the model was trained on. Every estimate comes from
:func:`~._record.fit_checkpoint`, so ``llc.zarr`` and ``llc_calibration.zarr``
hold the same fields (docs/stores.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ..checkpoint import checkpoint_path, load_checkpoint
from ..config import AUTO, LLC_RUN_SECTIONS, ConfigError, ExperimentConfig, LLCConfig, format_task_count
from ..data import sample_sequences, task_set
from ..predictors import ridge_predict
from ..schedule import checkpoint_steps, log_spaced_subset, weight_steps
from ..store import provenance_attrs
from ._calibration import PLATEAU_TOLERANCE, choose_epsilon
from ._diagnostics import HALF_Z_MAX, RHAT_MAX, SPIKE_RATIO, STATUS_FLAGS, status_code
from ._record import LLCRecord, fit_checkpoint

__all__ = [
    "LLC_RUN_SECTIONS",
    "llc_steps",
    "llc_data",
    "checkpoint_losses",
    "records_variables",
    "build_run_llc_dataset",
    "calibration_steps",
    "calibration_settings",
    "build_calibration_dataset",
]

log = logging.getLogger(__name__)

def _weight_steps(cfg: ExperimentConfig) -> np.ndarray:
    steps = checkpoint_steps(cfg.training.steps, cfg.checkpoints.linear_interval, cfg.checkpoints.log_count)
    return weight_steps(steps, cfg.checkpoints.weights_every)


def _check_steps(cfg: ExperimentConfig, wanted: Sequence[int], key: str) -> None:
    with_weights = _weight_steps(cfg)
    missing = [s for s in wanted if s not in set(with_weights.tolist())]
    if missing:
        hints = []
        for s in missing:
            below, above = with_weights[with_weights < s], with_weights[with_weights > s]
            near = [int(v) for v in (below[-1:].tolist() + above[:1].tolist())]
            hints.append(f"{s} (nearest with weights: {near})")
        raise ConfigError(
            f"experiments.{cfg.name}.{key}: {', '.join(hints)} are not checkpoints with weights "
            f"(checkpoints.linear_interval={cfg.checkpoints.linear_interval}, log_count={cfg.checkpoints.log_count}, "
            f"weights_every={cfg.checkpoints.weights_every}); pick steps that have weights"
        )


def llc_steps(cfg: ExperimentConfig) -> np.ndarray:
    """Checkpoint steps whose LLC is estimated, the final step always among them.

    ``llc.steps``: that list (each must be a checkpoint with weights, else a
    :class:`~transient_ridge.config.ConfigError` names the nearest ones), so that
    steps near ``t_crit`` can be chosen whatever ``checkpoints.linear_interval``
    is. ``llc.num_checkpoints``: that many log-spaced among the steps with
    weights from the first linear checkpoint on (earlier weights are far from
    any minimum of the loss: SGLD walks downhill there).
    """
    final = cfg.training.steps
    if cfg.llc.steps is not None:
        wanted = sorted({*(s for s in cfg.llc.steps if s <= final), final})
        _check_steps(cfg, wanted, "llc.steps")
        return np.asarray(wanted, dtype=np.int64)
    with_weights = _weight_steps(cfg)
    later = with_weights[with_weights >= min(cfg.checkpoints.linear_interval, final)]
    return log_spaced_subset(later, cfg.llc.num_checkpoints).astype(np.int64)


def llc_data(cfg: ExperimentConfig, M: float, tasks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fresh sequences from ``q_M``: ``x (n, K, D)``, ``y (n, K)`` float32 tensors."""
    key = 0 if math.isinf(M) else int(M)
    rng = np.random.default_rng([cfg.seeds.sgld, 7, key])
    x, y = sample_sequences(
        rng, task_set(tasks, M), cfg.llc.num_samples, cfg.data.K, cfg.data.D, cfg.data.noise_variance
    )
    return torch.from_numpy(x), torch.from_numpy(y)


def checkpoint_losses(
    model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], noise_variance: float, *, chunk: int = 1024
) -> dict[str, float]:
    """In-distribution loss of the checkpoint and of ridge on the LLC's own ``n`` sequences, with standard errors.

    The loss side of the loss–complexity tradeoff (Carroll et al. 2025, Fig. 3): the
    same ``q_M`` sequences that define ``ℓ_n``, so ``loss`` equals ``ℓ_n(w*)`` up to
    float32 rounding, and ridge (the Bayes predictor of ``q_∞``) is scored on them.

    Returns:
        ``loss``, ``loss_sem``: mean over sequences of the per-sequence MSE (over the
        ``K`` predictions) and its standard error; ``ridge_loss``, ``ridge_loss_sem``:
        the same for ridge; ``loss_minus_ridge``, ``loss_minus_ridge_sem``: the paired
        difference (same sequences) and its standard error.
    """
    x, y = data
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + chunk], y[i : i + chunk]) for i in range(0, len(y), chunk)])
    y64 = y.double().numpy()
    run = ((pred.double().numpy() - y64) ** 2).mean(axis=-1)  # (n,)
    ridge = ((ridge_predict(x.double().numpy(), y64, noise_variance) - y64) ** 2).mean(axis=-1)

    def mean_sem(values: np.ndarray) -> tuple[float, float]:
        return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))

    out = {}
    for name, values in (("loss", run), ("ridge_loss", ridge), ("loss_minus_ridge", run - ridge)):
        out[name], out[f"{name}_sem"] = mean_sem(values)
    return out


# Scalar fields of an LLCRecord stored as variables, with their description.
_RECORD_SCALARS = {
    "llc_mean": "LLC estimate: mean over healthy chains of nβ (mean draw loss − ℓ_n(w*))",
    "llc_std": "standard deviation (ddof 1) of the per-chain estimates over healthy chains",
    "llc_sem": "standard error of llc_mean: llc_std / sqrt(healthy chains)",
    "init_loss": "ℓ_n(w*), the mean loss over the n LLC sequences at the checkpoint",
    "failed_chains": "chains whose loss or weights became NaN/inf",
    "trace_peak": "highest SGLD minibatch loss over init_loss",
    "rhat": "split-R-hat of the post-burn-in loss traces across chains",
    "half_z": "second-half minus first-half mean of the draws, in Monte Carlo standard errors (batch means)",
    "mala_acceptance": "mean MALA acceptance probability of the post-burn-in SGLD steps (recorded, gates nothing)",
    "elapsed_s": "wall time of the fit in seconds",
}


def records_variables(records: np.ndarray, dims: tuple[str, ...], num_chains: int) -> dict[str, tuple]:
    """Store variables of an array of :class:`LLCRecord` (``records.shape`` over ``dims``).

    Adds ``chain`` and ``draw`` dims for ``llc_chain`` and ``loss_trace``; traces
    shorter than the longest (smaller ``num_burnin + num_draws`` at a larger ε) are
    NaN-padded at the end. ``status`` is an int8 code (``STATUS_FLAGS`` in its attrs).
    """
    flat = records.reshape(-1)
    length = max((r.loss_trace.shape[1] for r in flat), default=0)
    variables: dict[str, tuple] = {}
    for name, text in _RECORD_SCALARS.items():
        values = np.array([getattr(r, name) for r in flat], dtype=np.int64 if name == "failed_chains" else np.float64)
        variables[name] = (dims, values.reshape(records.shape), {"description": text})
    chains = np.stack([r.llc_chain for r in flat]) if flat.size else np.zeros((0, num_chains))
    variables["llc_chain"] = ((*dims, "chain"), chains.reshape(*records.shape, num_chains),
                              {"description": "per-chain LLC estimate (NaN: the chain failed)"})
    traces = np.full((flat.size, num_chains, length), np.nan)
    for i, r in enumerate(flat):
        traces[i, :, : r.loss_trace.shape[1]] = r.loss_trace
    variables["loss_trace"] = ((*dims, "chain", "draw"), traces.reshape(*records.shape, num_chains, length),
                               {"description": "SGLD minibatch loss per step: num_burnin burn-in steps, then the draws; "
                                               "NaN-padded to the longest trace"})
    codes = status_code(np.array([r.status for r in flat], dtype=str)).reshape(records.shape)
    variables["status"] = (dims, codes, {"description": "transient_ridge.llc.estimate_status", **STATUS_FLAGS})
    return variables


def _diagnostic_attrs() -> dict[str, float]:
    return {"spike_ratio": SPIKE_RATIO, "rhat_max": RHAT_MAX, "half_z_max": HALF_Z_MAX}


def _settings_attrs(cfg: ExperimentConfig) -> dict[str, float | int | str]:
    return {**cfg.llc.sgld_settings(), "seed": cfg.seeds.sgld, **_diagnostic_attrs()}


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
    """LLC records of one run at :func:`llc_steps`; dims ``(step, chain, draw)``, scalar coordinate ``M``.

    ``epsilon`` overrides ``llc.epsilon`` (required when that is ``"auto"``: the
    calibrated value; ``epsilon_source`` says where it came from). A NaN
    ``epsilon`` means the calibration saw every ε fail: then no chain is run and
    every estimate is recorded as failed with that reason (a known failure is not
    repeated). Failed estimates never raise (:func:`~._record.fit_checkpoint`).
    Besides the record fields, each step has the checkpoint's in-distribution loss
    and ridge's on the same sequences (:func:`checkpoint_losses`).
    """
    steps = llc_steps(cfg)
    data = llc_data(cfg, M, tasks)
    settings = cfg.llc
    used = settings.epsilon if epsilon is None else float(epsilon)
    if used == AUTO:
        raise ValueError(
            f"experiment {cfg.name}: llc.epsilon is 'auto'; pass the epsilon chosen by the llc_calibration rule"
        )
    label = f"M={format_task_count(M)}"
    records, losses = [], []
    for step in steps:
        model, _ = load_checkpoint(checkpoint_path(checkpoints_dir, int(step)), device=device)
        losses.append(checkpoint_losses(model, data, cfg.data.noise_variance))
        if math.isnan(used):
            records.append(LLCRecord.failed(
                epsilon=used, gamma=settings.gamma, nbeta=settings.nbeta, num_chains=settings.num_chains,
                num_burnin=0, num_draws=0,
                error=f"not fitted: the calibration saw every epsilon fail ({epsilon_source})",
            ))
            log.warning("%s step %d: %s", label, step, records[-1].error)
            continue
        records.append(fit_checkpoint(
            model, data, settings, seed=cfg.seeds.sgld + int(step), epsilon=used, label=f"{label} step {int(step)}"
        ))
    variables = records_variables(np.array(records, dtype=object), ("step",), settings.num_chains)
    for name in losses[0]:
        variables[name] = ("step", np.array([row[name] for row in losses]),
                           {"description": "in-distribution loss on the LLC sequences (checkpoint_losses)"})
    burnin, draws = (0, 0) if math.isnan(used) else settings.chain_length(used)
    errors = [f"{label} step {int(s)}: {r.error}" for s, r in zip(steps, records) if r.error]
    attrs = {**_settings_attrs(cfg), "epsilon": used, "epsilon_source": epsilon_source,
             "num_burnin": burnin, "num_draws": draws, "errors": errors}
    return xr.Dataset(
        variables,
        coords={"M": float(M), "step": steps, "chain": np.arange(settings.num_chains),
                "draw": np.arange(variables["loss_trace"][1].shape[-1])},
        attrs={**attrs, **provenance_attrs(cfg.name, cfg.to_json())},
    )


def calibration_steps(cfg: ExperimentConfig) -> np.ndarray:
    """The checkpoints the calibration sweeps: ``llc.calibration.steps``, else the first, middle and last LLC one."""
    grid = cfg.llc.calibration
    if grid is not None and grid.steps is not None:
        # steps past the end of a shortened run fall back to its final step
        wanted = sorted({s for s in grid.steps if s <= cfg.training.steps}) or [cfg.training.steps]
        _check_steps(cfg, wanted, "llc.calibration.steps")
        return np.asarray(wanted, dtype=np.int64)
    steps = llc_steps(cfg)
    return np.unique(steps[[0, len(steps) // 2, len(steps) - 1]]).astype(np.int64)


def calibration_settings(cfg: ExperimentConfig) -> LLCConfig:
    """``cfg.llc`` with the calibration's own chain count and SGLD-time lengths (where it sets them)."""
    grid = cfg.llc.calibration
    if grid is None:
        raise ValueError(f"experiment {cfg.name} has no llc.calibration block in its config")
    overrides = {
        key: getattr(grid, key) for key in ("num_chains", "burnin_time", "draw_time") if getattr(grid, key) is not None
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
    :func:`calibration_steps`. Every estimate is a :func:`~._record.fit_checkpoint`
    record (chains of equal SGLD time at every ε, the seed ``llc_run`` uses at that
    step), so a fit that fails or raises is a finding stored as failed, never a crash.
    The choice (:func:`~._calibration.choose_epsilon`, at ``llc.gamma``) is the 0-d
    variable ``chosen_epsilon`` (NaN when every estimate failed) with ``healthy``,
    ``plateau``, ``accepted`` per ``(M, step, epsilon)``, ``eligible`` per ``(M, step)``
    and the attributes ``rule_satisfied`` (0/1) and ``choice_reason``.

    With a seed axis it measures the runs of ``cfg.seeds.calibration_seed`` (the
    attribute ``train_seed``); ``config`` records the whole experiment, all seeds, since
    this store is often the one written last (what ``archive create`` records).
    """
    experiment_cfg = cfg
    cfg = cfg.for_seed(cfg.seeds.calibration_seed)  # None (no seed axis): the experiment as it is
    grid = cfg.llc.calibration
    settings = calibration_settings(cfg)
    at = np.asarray(calibration_steps(cfg) if steps is None else sorted(int(s) for s in steps), dtype=np.int64)
    shape = (len(grid.M), len(at), len(grid.epsilon), len(grid.gamma))
    records = np.empty(shape, dtype=object)
    for a, M in enumerate(grid.M):
        data = llc_data(cfg, M, tasks)
        for s, step in enumerate(at):
            model, _ = load_checkpoint(checkpoint_path(checkpoint_dirs[M], int(step)), device=device)
            for b, epsilon in enumerate(grid.epsilon):
                for c, gamma in enumerate(grid.gamma):
                    records[a, s, b, c] = fit_checkpoint(
                        model, data, settings, seed=cfg.seeds.sgld + int(step), epsilon=epsilon, gamma=gamma,
                        label=f"calibration M={format_task_count(M)} step {int(step)}",
                    )
    dims4 = ("M", "step", "epsilon", "gamma")
    variables = records_variables(records, dims4, settings.num_chains)
    g = grid.gamma.index(cfg.llc.gamma) if cfg.llc.gamma in grid.gamma else 0
    final = at == cfg.training.steps
    status = np.vectorize(lambda r: r.status, otypes=[object])(records[..., g]).astype(str)
    mean = np.vectorize(lambda r: r.llc_mean, otypes=[float])(records[..., g])
    sem = np.vectorize(lambda r: r.llc_sem, otypes=[float])(records[..., g])
    points = (len(grid.M) * len(at), len(grid.epsilon))
    labels = [f"M={format_task_count(M)} step {int(step)}" for M in grid.M for step in at]
    choice = choose_epsilon(
        np.asarray(grid.epsilon), mean.reshape(points), sem.reshape(points), status.reshape(points),
        np.broadcast_to(final, shape[:2]).reshape(-1), labels,
    )
    (log.info if choice.rule_satisfied else log.warning)("calibration chose epsilon=%g: %s", choice.epsilon, choice.reason)
    dims3 = ("M", "step", "epsilon")
    lengths = np.array([[settings.chain_length(e, gm) for gm in grid.gamma] for e in grid.epsilon])  # (E, G, 2)
    variables.update({
        "num_burnin": (("epsilon", "gamma"), lengths[..., 0], {"description": "burn-in steps: burnin_time/(ε γ)"}),
        "num_draws": (("epsilon", "gamma"), lengths[..., 1], {"description": "draws: draw_time/(ε γ)/steps_between_draws"}),
        "healthy": (dims3, choice.healthy.reshape(shape[:3])),
        "plateau": (dims3, choice.plateau.reshape(shape[:3])),
        "accepted": (dims3, choice.accepted.reshape(shape[:3])),
        "eligible": (("M", "step"), choice.eligible.reshape(shape[:2])),
        "chosen_epsilon": ((), choice.epsilon),
    })
    errors = [f"M={format_task_count(grid.M[a])} step {int(at[s])} eps={grid.epsilon[b]:g} gamma={grid.gamma[c]:g}: "
              f"{records[a, s, b, c].error}" for a, s, b, c in np.ndindex(*shape) if records[a, s, b, c].error]
    return xr.Dataset(
        variables,
        coords={
            "M": np.array(grid.M, dtype=np.float64), "step": at, "epsilon": np.array(grid.epsilon),
            "gamma": np.array(grid.gamma), "chain": np.arange(settings.num_chains),
            "draw": np.arange(variables["loss_trace"][1].shape[-1]),
        },
        attrs={
            **_settings_attrs(cfg),
            **{key: getattr(settings, key) for key in ("num_chains", "burnin_time", "draw_time")},
            "chosen_gamma": float(grid.gamma[g]),
            "rule_satisfied": int(choice.rule_satisfied),
            "choice_reason": choice.reason,
            "plateau_tolerance": PLATEAU_TOLERANCE,
            "errors": errors,
            "train_seed": int(cfg.seeds.train_seeds[0]),
            **provenance_attrs(cfg.name, experiment_cfg.to_json()),
        },
    )
