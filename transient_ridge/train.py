"""Training one run (one task diversity M): Adam, stateless batches, checkpoints, exact resume.

Layout of a run directory ``runs/M{M}/``::

    .resume/state.pt          latest full state (model, optimizer, step); never a declared output
    .resume/checkpoints/      weights at the kept checkpoint steps, written as training goes
    .resume/predictions/      raw probe-set predictions, one file per resume interval
    checkpoints/              (declared output) the weights, moved here when training ends
    predictions.zarr          (declared output) raw predictions at every checkpoint step

Snakemake deletes declared outputs before rerunning a job, so everything a
resumed job needs lives in ``.resume/``; the declared outputs appear only
when the run is complete.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .checkpoint import atomic_torch_save, checkpoint_path, save_checkpoint
from .config import ExperimentConfig
from .data import sample_batch, task_set
from .model import InContextRegressionTransformer, ModelConfig
from .precision import training_precision
from .schedule import checkpoint_steps, learning_rate, weight_steps
from .store import provenance_attrs, replace_directory, write_dataset

__all__ = [
    "TRAINING_SECTIONS",
    "TrainingDivergedError",
    "ProbeInputs",
    "model_config_for",
    "init_model",
    "predict",
    "train_step",
    "train_run",
]

log = logging.getLogger(__name__)

# The config sections a training run depends on: a resume state written under other
# values of these is discarded; other sections (LLC, figures, ...) may change freely.
TRAINING_SECTIONS = (
    "data",
    "seeds.tasks",
    "seeds.train",
    "seeds.init",
    "seeds.probes",
    "probes",
    "model",
    "training",
    "checkpoints",
    "evaluation",
)


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def model_config_for(cfg: ExperimentConfig) -> ModelConfig:
    """The model config of an experiment (data dims plus the model shape)."""
    shape = cfg.model
    return ModelConfig(cfg.data.D, cfg.data.K, shape.n_layer, shape.d_model, shape.n_head, shape.d_mlp)


def init_model(cfg: ExperimentConfig, M: float) -> InContextRegressionTransformer:
    """A freshly initialised model; the init seed is shared by all M (same start point for every run)."""
    del M  # every run starts from the same weights, as in the paper's sweep
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seeds.init)
        return InContextRegressionTransformer(model_config_for(cfg))


@dataclass(frozen=True)
class ProbeInputs:
    """The fixed probe sets a run predicts at every checkpoint (float32 arrays).

    ``root``: ``(B, K, D), (B, K)``; ``ood``: ``(N_ood, K, D), (N_ood, K)``;
    ``id``: this run's in-distribution set ``(N_id, K, D), (N_id, K)``.
    """

    root_x: np.ndarray
    root_y: np.ndarray
    ood_x: np.ndarray
    ood_y: np.ndarray
    id_x: np.ndarray
    id_y: np.ndarray

    @classmethod
    def from_tasks_dataset(cls, dataset: xr.Dataset, M: float) -> ProbeInputs:
        id_set = dataset.sel(M=M)
        return cls(
            root_x=dataset["root_x"].values,
            root_y=dataset["root_y"].values,
            ood_x=dataset["ood_x"].values,
            ood_y=dataset["ood_y"].values,
            id_x=id_set["id_x"].values,
            id_y=id_set["id_y"].values,
        )


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    batch_size: int,
    device: torch.device | str,
) -> np.ndarray:
    """Model predictions ``(N, K)`` float32 for inputs ``(N, K, D)``, ``(N, K)``, in batches."""
    x = torch.as_tensor(x, device=device)
    y = torch.as_tensor(y, device=device)
    outputs = [model(x[start : start + batch_size], y[start : start + batch_size]) for start in range(0, x.shape[0], batch_size)]
    return torch.cat(outputs).float().cpu().numpy()


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> torch.Tensor:
    """One Adam step on the mean squared error of a batch ``x (B, K, D)``, ``y (B, K)``.

    ``autocast()`` wraps the forward pass and the loss (bf16: see
    :func:`transient_ridge.precision.training_precision`); the backward pass and
    the optimizer step run outside it, on the float32 weights. Returns the loss
    (a device tensor: reading it synchronises, so the caller does that rarely).
    """
    with autocast():
        loss = torch.mean((model(x, y) - y) ** 2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def _predict_probes(
    model: torch.nn.Module, probes: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_size: int
) -> dict[str, np.ndarray]:
    """Predictions on every probe set; ``probes`` maps ``pred_root`` etc. to ``(x, y)`` already on the device."""
    was_training = model.training
    model.eval()
    result = {
        name: predict(model, x, y, batch_size=batch_size, device=x.device) for name, (x, y) in probes.items()
    }
    model.train(was_training)
    return result


def _flush_predictions(directory: Path, records: dict[int, dict[str, np.ndarray]]) -> None:
    """Write the predictions recorded since the last flush to one ``.npz`` file (atomic)."""
    if not records:
        return
    steps = sorted(records)
    arrays = {name: np.stack([records[s][name] for s in steps]) for name in records[steps[0]]}
    path = directory / f"upto_{steps[-1]:07d}.npz"
    temporary = directory / f".{path.name}.tmp.npz"
    np.savez(temporary, step=np.array(steps, dtype=np.int64), **arrays)
    temporary.replace(path)
    records.clear()


def _load_predictions(directory: Path, up_to_step: int) -> dict[str, np.ndarray]:
    """Gather flushed predictions with step <= ``up_to_step``, dropping later (stale) files."""
    parts = []
    for path in sorted(directory.glob("upto_*.npz")):
        with np.load(path) as archive:
            if int(archive["step"][0]) > up_to_step:
                path.unlink()  # written after the state we resume from: will be recomputed
                continue
            keep = archive["step"] <= up_to_step
            parts.append({name: archive[name][keep] for name in archive.files})
    if not parts:
        return {}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _predictions_dataset(
    arrays: dict[str, np.ndarray], cfg: ExperimentConfig, M: float
) -> xr.Dataset:
    K = cfg.data.K
    return xr.Dataset(
        {
            "pred_root": (("step", "sequence", "token"), arrays["pred_root"]),
            "pred_ood": (("step", "ood_sequence", "token"), arrays["pred_ood"]),
            "pred_id": (("step", "id_sequence", "token"), arrays["pred_id"]),
        },
        coords={
            "step": arrays["step"],
            "token": np.arange(1, K + 1),
            "sequence": np.arange(arrays["pred_root"].shape[1]),
            "ood_sequence": np.arange(arrays["pred_ood"].shape[1]),
            "id_sequence": np.arange(arrays["pred_id"].shape[1]),
        },
        attrs={"M": float(M), "precision": cfg.training.precision, **provenance_attrs(cfg.name, cfg.to_json())},
    )


def train_run(
    cfg: ExperimentConfig,
    M: float,
    tasks: np.ndarray,
    probes: ProbeInputs,
    run_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    stop_after: int | None = None,
) -> None:
    """Train the model for task diversity ``M`` and write its checkpoints and predictions.

    Resumes from ``run_dir/.resume/state.pt`` when it exists and was written
    by the same experiment config; the result is then bit-identical (on CPU,
    same thread count) to an uninterrupted run.

    Args:
        tasks: the nested task sequence ``(Mmax, D)``.
        probes: the fixed probe sets predicted at every checkpoint.
        stop_after: stop (as if killed) once this step is reached; for tests.

    The run trains in ``training.precision`` (:mod:`transient_ridge.precision`):
    TF32 or IEEE float32 matmuls for the whole run, checkpoint predictions
    included; for bf16, autocast around each step's forward pass and loss.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite (names M and the step).
    """
    with training_precision(cfg.training.precision, device) as autocast:
        _train_run(cfg, M, tasks, probes, run_dir, device=device, stop_after=stop_after, autocast=autocast)


def _train_run(
    cfg: ExperimentConfig,
    M: float,
    tasks: np.ndarray,
    probes: ProbeInputs,
    run_dir: str | Path,
    *,
    device: torch.device | str,
    stop_after: int | None,
    autocast: Callable[[], contextlib.AbstractContextManager],
) -> None:
    """The body of :func:`train_run`; ``autocast()`` gives the context of each step's forward pass."""
    run_dir = Path(run_dir)
    resume_dir = run_dir / ".resume"
    staged_checkpoints = resume_dir / "checkpoints"
    staged_predictions = resume_dir / "predictions"
    state_path = resume_dir / "state.pt"
    train_cfg = cfg.training
    total = train_cfg.steps
    record_steps = set(checkpoint_steps(total, cfg.checkpoints.linear_interval, cfg.checkpoints.log_count).tolist())
    keep_weights = set(
        weight_steps(np.array(sorted(record_steps)), cfg.checkpoints.weights_every).tolist()
    )
    config_json = cfg.to_json()
    fingerprint = cfg.run_fingerprint(TRAINING_SECTIONS, M)
    label = f"M={'inf' if math.isinf(M) else int(M)}"

    device = torch.device(device)

    def new_optimizer(parameters):  # fused Adam on CUDA: one kernel for all parameters
        fused = {"fused": True} if device.type == "cuda" else {}
        return torch.optim.Adam(
            parameters, lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay, **fused
        )

    model = init_model(cfg, M).to(device)
    optimizer = new_optimizer(model.parameters())
    step = 0
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint and state["M"] == float(M):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step = int(state["step"])
            expected = {s for s in keep_weights if s <= step}
            present = {int(p.stem.split("_")[1]) for p in staged_checkpoints.glob("step_*.pt")}
            if not expected <= present:
                # killed while finishing (weights already moved away): the state alone is not enough
                log.warning("%s: resume state lacks checkpoints %s; starting afresh", label, sorted(expected - present)[:5])
                shutil.rmtree(resume_dir)
                model = init_model(cfg, M).to(device)
                optimizer = new_optimizer(model.parameters())
                step = 0
            else:
                log.info("%s: resuming from step %d (%s)", label, step, state_path)
        else:
            log.warning("%s: resume state %s was written by another config; starting afresh", label, state_path)
            shutil.rmtree(resume_dir)
    elif resume_dir.exists():
        shutil.rmtree(resume_dir)  # killed before the first state was saved
    staged_checkpoints.mkdir(parents=True, exist_ok=True)
    staged_predictions.mkdir(parents=True, exist_ok=True)
    for stale in staged_checkpoints.glob("step_*.pt"):
        if int(stale.stem.split("_")[1]) > step:
            stale.unlink()
    records: dict[int, dict[str, np.ndarray]] = {}
    task_tensor = None if task_set(tasks, M) is None else torch.as_tensor(task_set(tasks, M), dtype=torch.float32, device=device)
    eval_batch = cfg.evaluation.batch_size
    probe_tensors = {  # moved to the device once, not at every checkpoint
        name: (torch.as_tensor(x, device=device), torch.as_tensor(y, device=device))
        for name, x, y in (
            ("pred_root", probes.root_x, probes.root_y),
            ("pred_ood", probes.ood_x, probes.ood_y),
            ("pred_id", probes.id_x, probes.id_y),
        )
    }

    def record(at_step: int) -> None:
        records[at_step] = _predict_probes(model, probe_tensors, eval_batch)
        if at_step in keep_weights and not checkpoint_path(staged_checkpoints, at_step).exists():
            save_checkpoint(
                checkpoint_path(staged_checkpoints, at_step),
                model,
                step=at_step,
                M=M,
                experiment_config=config_json,
                precision=train_cfg.precision,
            )

    def save_state(at_step: int) -> None:
        _flush_predictions(staged_predictions, records)
        atomic_torch_save(
            {
                "step": at_step,
                "M": float(M),
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
            },
            state_path,
        )

    if step == 0:
        record(0)
        save_state(0)
    model.train()
    started = time.perf_counter()
    started_step = step
    loss_sum, loss_count = 0.0, 0
    while step < total:
        if stop_after is not None and step >= stop_after:
            return
        x, y = sample_batch(
            task_tensor,
            seed=cfg.seeds.train,
            step=step,
            batch_size=train_cfg.batch_size,
            K=cfg.data.K,
            D=cfg.data.D,
            noise_variance=cfg.data.noise_variance,
            device=device,
        )
        lr = learning_rate(step, total, train_cfg.lr, train_cfg.schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = train_step(model, optimizer, x, y, autocast)
        step += 1
        if step in record_steps or step % train_cfg.log_every == 0 or step == total:
            loss_value = float(loss.detach())  # synchronises with the device: only now and then
            if not math.isfinite(loss_value):
                raise TrainingDivergedError(
                    f"training {label} diverged at step {step}: loss={loss_value}. "
                    f"Lower training.lr (now {train_cfg.lr}) or check the data settings; "
                    f"the last good state is kept in {resume_dir}"
                )
            loss_sum += loss_value
            loss_count += 1
        if step in record_steps:
            record(step)
        if step % train_cfg.resume_every == 0 or step == total:
            save_state(step)
        if step % train_cfg.log_every == 0 or step == total:
            elapsed = time.perf_counter() - started
            rate = (step - started_step) / max(elapsed, 1e-9)
            log.info(
                "%s step %d/%d loss %.4f lr %.2e %.1f steps/s ETA %.0f s",
                label,
                step,
                total,
                loss_sum / max(loss_count, 1),
                lr,
                rate,
                (total - step) / max(rate, 1e-9),
            )
            loss_sum, loss_count = 0.0, 0

    arrays = _load_predictions(staged_predictions, total)
    missing = sorted(record_steps - set(arrays["step"].tolist()))
    if missing:
        raise RuntimeError(f"{label}: predictions missing at steps {missing[:5]}…; delete {resume_dir} and rerun")
    write_dataset(_predictions_dataset(arrays, cfg, M), run_dir / "predictions.zarr")
    replace_directory(staged_checkpoints, run_dir / "checkpoints")
    shutil.rmtree(resume_dir)
    log.info("%s: done, %d checkpoints recorded, %d with weights", label, len(record_steps), len(keep_weights))
