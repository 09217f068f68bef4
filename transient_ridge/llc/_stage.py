"""The ``llc`` stage: LLC records of a run's checkpoints, gathered across runs, and the ε calibration.

Data behind ``ℓ_n``: ``n = llc.num_samples`` fresh sequences from ``q_M``
drawn with the SGLD seed (never the training stream); loss is the
per-prediction MSE the model was trained on. Every estimate comes from
:func:`~._record.fit_checkpoint`, so ``llc.zarr`` and ``llc_calibration.zarr``
hold the same fields (docs/stores.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ..checkpoint import checkpoint_path, load_checkpoint
from ..config import AUTO, LLC_RUN_SECTIONS, ExperimentConfig, format_task_count
from ..data import sample_sequences, task_set
from ..predictors import ridge_predict
from ..store import provenance_attrs
from ._diagnostics import FAILED, HALF_Z_MAX, RHAT_MAX, SPIKE_RATIO, STATUS_FLAGS, status_code
from ._record import LLCRecord, fit_checkpoint, fit_checkpoints
from ._steps import calibration_settings, calibration_steps, llc_steps

__all__ = [
    "LLC_RUN_SECTIONS",
    "llc_steps",
    "llc_data",
    "checkpoint_losses",
    "records_variables",
    "build_run_llc_dataset",
    "reusable_calibration_record",
    "calibration_steps",
    "calibration_settings",
    "build_calibration_point",
    "build_calibration_dataset",
]

log = logging.getLogger(__name__)

# The most SGLD chains of one run's checkpoints run as one stacked computation in llc_run
# (mini: 3 checkpoints x 4 chains; 1.1-1.2x per estimate on a CPU against one at a time).
# A cap, because memory grows with the stack (a paper run has 20 checkpoints x 8 chains).
MAX_STACKED_CHAINS = 16

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
    calibration: xr.Dataset | None = None,
) -> xr.Dataset:
    """LLC records of one run at :func:`llc_steps`; dims ``(step, chain, draw)``, scalar coordinate ``M``.

    ``calibration``: the ``llc_calibration`` store, when this run is one of its runs.
    Where it already holds this very estimate (same checkpoint, ε, γ, seed and chain
    settings: :func:`reusable_calibration_record`), the record is taken from it instead
    of running the same chains again; the attribute ``reused_from_calibration`` lists
    those steps.

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
    records: list[LLCRecord | None] = []
    losses, reused = [], []
    to_fit: list[tuple[int, int, torch.nn.Module]] = []  # (index in steps, step, model) of the fits to run
    for i, step in enumerate(steps):
        model, _ = load_checkpoint(checkpoint_path(checkpoints_dir, int(step)), device=device)
        losses.append(checkpoint_losses(model, data, cfg.data.noise_variance))
        known = None if calibration is None else reusable_calibration_record(calibration, cfg, M, int(step), used)
        if known is not None:
            log.info("%s step %d: %s (the calibration's own fit, reused)", label, step, known.summary())
            records.append(known)
            reused.append(int(step))
            continue
        if math.isnan(used):
            records.append(LLCRecord.failed(
                epsilon=used, gamma=settings.gamma, nbeta=settings.nbeta, num_chains=settings.num_chains,
                num_burnin=0, num_draws=0,
                error=f"not fitted: the calibration saw every epsilon fail ({epsilon_source})",
            ))
            log.warning("%s step %d: %s", label, step, records[-1].error)
            continue
        records.append(None)
        to_fit.append((i, int(step), model))
    # The run's fits share ε and data: their chains run together, up to MAX_STACKED_CHAINS at a time.
    per_group = max(1, MAX_STACKED_CHAINS // settings.num_chains)
    for lo in range(0, len(to_fit), per_group):
        group = to_fit[lo : lo + per_group]
        fitted = fit_checkpoints(
            [model for _, _, model in group], data, settings, epsilon=used,
            seeds=[cfg.seeds.sgld + step for _, step, _ in group], labels=[f"{label} step {step}" for _, step, _ in group],
        )
        for (i, _, _), record in zip(group, fitted):
            records[i] = record
    variables = records_variables(np.array(records, dtype=object), ("step",), settings.num_chains)
    for name in losses[0]:
        variables[name] = ("step", np.array([row[name] for row in losses]),
                           {"description": "in-distribution loss on the LLC sequences (checkpoint_losses)"})
    burnin, draws = (0, 0) if math.isnan(used) else settings.chain_length(used)
    errors = [f"{label} step {int(s)}: {r.error}" for s, r in zip(steps, records) if r.error]
    attrs = {**_settings_attrs(cfg), "epsilon": used, "epsilon_source": epsilon_source,
             "num_burnin": burnin, "num_draws": draws, "errors": errors, "reused_from_calibration": reused}
    return xr.Dataset(
        variables,
        coords={"M": float(M), "step": steps, "chain": np.arange(settings.num_chains),
                "draw": np.arange(variables["loss_trace"][1].shape[-1])},
        attrs={**attrs, **provenance_attrs(cfg.name, cfg.to_json())},
    )


# The settings that make two fits of one checkpoint the same computation (besides ε, γ and the seed).
_SAME_FIT = ("nbeta", "num_samples", "num_chains", "burnin_time", "draw_time", "steps_between_draws", "batch_size")


def reusable_calibration_record(
    calibration: xr.Dataset, cfg: ExperimentConfig, M: float, step: int, epsilon: float
) -> LLCRecord | None:
    """The calibration's record of exactly the fit ``llc_run`` would make, or None.

    ``cfg`` is the run's (one train seed). The fit is the same when the calibration
    measured this run (its ``train_seed``) at ``step`` with this ε and ``llc.gamma``,
    the same SGLD seed and every chain setting in ``_SAME_FIT`` equal, and it did not
    fail (a failed record keeps no error text per point, so it is refitted).
    """
    attrs = calibration.attrs
    if "train_seed" not in attrs or int(attrs["train_seed"]) != int(cfg.seeds.train):
        return None
    if int(attrs.get("seed", -1)) != int(cfg.seeds.sgld):
        return None
    if any(key not in attrs or attrs[key] != getattr(cfg.llc, key) for key in _SAME_FIT):
        return None
    coords = {"M": float(M), "step": int(step), "epsilon": float(epsilon), "gamma": float(cfg.llc.gamma)}
    if any(value not in calibration[name].values for name, value in coords.items()):
        return None
    record = LLCRecord.from_store(calibration.sel(coords))
    return None if record.status == FAILED else record


def build_calibration_point(
    cfg: ExperimentConfig,
    M: float,
    step: int,
    checkpoints_dir: str | Path,
    tasks: np.ndarray,
    *,
    device: torch.device | str = "cpu",
) -> xr.Dataset:
    """The ε × γ sweep at one calibration point (one run's checkpoint): one ``llc_calibration_point`` job.

    Dims ``(epsilon, gamma, chain, draw)``, scalar coordinates ``M`` and ``step``. Every
    estimate is a :func:`~._record.fit_checkpoint` record with chains of equal SGLD time
    at every ε and the seed ``llc_run`` uses at that step, so a fit that fails or raises
    is a finding stored as failed, never a crash. ``cfg`` is the experiment; with a seed
    axis the point belongs to the runs of ``cfg.seeds.calibration_seed``. The choice of ε
    is made over every point by :func:`~._calibration_store.combine_calibration_points`.
    """
    experiment_cfg = cfg
    cfg = cfg.for_seed(cfg.seeds.calibration_seed)  # None (no seed axis): the experiment as it is
    grid = cfg.llc.calibration
    settings = calibration_settings(cfg)
    data = llc_data(cfg, M, tasks)
    model, _ = load_checkpoint(checkpoint_path(checkpoints_dir, int(step)), device=device)
    label = f"calibration M={format_task_count(M)} step {int(step)}"
    records = np.empty((len(grid.epsilon), len(grid.gamma)), dtype=object)
    # the largest ε first: a diverging ε shows within seconds, and it is the cheapest fit
    for b in reversed(range(len(grid.epsilon))):
        for c, gamma in enumerate(grid.gamma):
            records[b, c] = fit_checkpoint(
                model, data, settings, seed=cfg.seeds.sgld + int(step), epsilon=grid.epsilon[b], gamma=gamma,
                label=label,
            )
    variables = records_variables(records, ("epsilon", "gamma"), settings.num_chains)
    errors = [f"M={format_task_count(M)} step {int(step)} eps={grid.epsilon[b]:g} gamma={grid.gamma[c]:g}: "
              f"{records[b, c].error}" for b, c in np.ndindex(*records.shape) if records[b, c].error]
    return xr.Dataset(
        variables,
        coords={
            "M": float(M), "step": int(step), "epsilon": np.array(grid.epsilon), "gamma": np.array(grid.gamma),
            "chain": np.arange(settings.num_chains), "draw": np.arange(variables["loss_trace"][1].shape[-1]),
        },
        attrs={
            **_settings_attrs(cfg),
            **{key: getattr(settings, key) for key in ("num_chains", "burnin_time", "draw_time")},
            "errors": errors,
            "train_seed": int(cfg.seeds.train_seeds[0]),
            **provenance_attrs(cfg.name, experiment_cfg.to_json()),
        },
    )


def build_calibration_dataset(
    cfg: ExperimentConfig,
    checkpoint_dirs: dict[float, str | Path],
    tasks: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    steps: Iterable[int] | None = None,
) -> xr.Dataset:
    """Every calibration point (:func:`build_calibration_point`) fitted in this process, then combined.

    What the ``llc_calibration_point`` jobs and the ``llc_calibration`` rule compute
    together, in one call (benchmarks, tests). ``checkpoint_dirs`` maps each
    ``llc.calibration.M`` to its run's checkpoints; ``steps`` defaults to
    :func:`calibration_steps`.
    """
    from ._calibration_store import combine_calibration_points

    narrowed = cfg.for_seed(cfg.seeds.calibration_seed)
    at = calibration_steps(narrowed) if steps is None else sorted(int(s) for s in steps)
    points = [
        build_calibration_point(cfg, M, int(step), checkpoint_dirs[M], tasks, device=device)
        for M in narrowed.llc.calibration.M for step in at
    ]
    return combine_calibration_points(cfg, points)
