"""Training one run (one task diversity M): Adam, stateless batches, checkpoints, exact resume.

Layout of a run directory ``runs/M{M}/`` (``runs/M{M}/s{seed}/`` in an experiment with a seed axis)::

    .resume/state.pt          latest full state (model, optimizer, step); never a declared output
    .resume/checkpoints/      weights at the kept checkpoint steps, written as training goes
    .resume/predictions/      raw probe-set predictions, one file per resume interval
    .resume/predictions.zarr  the predictions store and ``complete.json``, staged when training ends
    checkpoints/              (declared output) the weights, moved here from .resume/ at the end
    predictions.zarr          (declared output) raw predictions at every checkpoint step

(:mod:`transient_ridge.run_files`). A group of runs can train as one batched computation in one
job (:mod:`transient_ridge.train_group`); each member still has its own directory and state.

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
from .config import TRAINING_SECTIONS, ExperimentConfig, format_task_count
from .data import sample_batch, task_set
from .model import InContextRegressionTransformer, ModelConfig
from .precision import training_precision
from .run_files import RunFiles, mark_staged, publish_staged_run
from .schedule import checkpoint_steps, learning_rate, weight_steps
from .store import provenance_attrs, write_dataset

__all__ = [
    "TRAINING_SECTIONS",
    "TrainingDivergedError",
    "ProbeInputs",
    "model_config_for",
    "init_model",
    "new_optimizer",
    "predict",
    "train_step",
    "train_run",
]

log = logging.getLogger(__name__)

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
        attrs={
            "M": float(M),
            "seed": int(cfg.seeds.train),
            "precision": cfg.training.precision,
            **provenance_attrs(cfg.name, cfg.to_json()),
        },
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

    ``cfg`` holds one seed per source (an experiment with a seed axis is narrowed
    to one train seed first: ``cfg.for_seed(seed)``). Resumes from
    ``run_dir/.resume/state.pt`` when it exists and was written by the same
    settings; the result is then bit-identical (on CPU, same thread count) to an
    uninterrupted run.

    Args:
        tasks: the nested task sequence ``(Mmax, D)``.
        probes: the fixed probe sets predicted at every checkpoint.
        stop_after: stop (as if killed) once this step is reached; for tests.

    The run trains in ``training.precision`` (:mod:`transient_ridge.precision`):
    TF32 or IEEE float32 matmuls for the whole run, checkpoint predictions
    included; for bf16, autocast around each step's forward pass and loss.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite (names M and the step).
        ConfigError: ``cfg`` still lists several seeds.
    """
    cfg.seeds.require_single(f"training run M={format_task_count(M)}")
    with training_precision(cfg.training.precision, device) as autocast:
        _train_run(cfg, M, tasks, probes, run_dir, device=torch.device(device), stop_after=stop_after, autocast=autocast)


@dataclass(frozen=True)
class _RunPlan:
    """What one run does: its settings, the steps it records and the steps whose weights it keeps."""

    cfg: ExperimentConfig
    M: float
    record_steps: frozenset[int]
    keep_weights: frozenset[int]
    fingerprint: str
    label: str

    @classmethod
    def of(cls, cfg: ExperimentConfig, M: float) -> _RunPlan:
        record = checkpoint_steps(cfg.training.steps, cfg.checkpoints.linear_interval, cfg.checkpoints.log_count)
        keep = weight_steps(np.array(sorted(record.tolist())), cfg.checkpoints.weights_every)
        return cls(
            cfg=cfg,
            M=M,
            record_steps=frozenset(record.tolist()),
            keep_weights=frozenset(keep.tolist()),
            fingerprint=cfg.run_fingerprint(TRAINING_SECTIONS, M),
            label=f"M={format_task_count(M)}",
        )


def new_optimizer(model: torch.nn.Module, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    """Adam with the experiment's settings, fused (one kernel for all parameters, on CPU and CUDA tensors
    alike: on the CPU about 8 % of a mini training step, on CUDA more; benchmarks/bench_training.py)."""
    train_cfg = cfg.training
    return torch.optim.Adam(
        model.parameters(), lr=train_cfg.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay, fused=True
    )


def _fresh_start(plan: _RunPlan, device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer, int]:
    model = init_model(plan.cfg, plan.M).to(device)
    return model, new_optimizer(model, plan.cfg), 0


def _resume(
    plan: _RunPlan, files: RunFiles, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer, int]:
    """The model, optimizer and step to continue from, and a clean ``.resume/`` to continue in.

    The saved state counts only when it was written with this run's settings
    (``plan.fingerprint``) and all the weights it should have kept are still
    staged; otherwise ``.resume/`` is discarded and the run starts afresh. Staged
    weights after the resumed step (written after the state) are removed, and so is a
    pending state that a killed group left (:mod:`transient_ridge.train_group` settles
    those before it resumes its members).
    """
    files.pending_state.unlink(missing_ok=True)
    model, optimizer, step = _fresh_start(plan, device)
    if files.state.exists():
        state = torch.load(files.state, map_location=device, weights_only=False)
        if state.get("fingerprint") == plan.fingerprint and state["M"] == float(plan.M):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step = int(state["step"])
            expected = {s for s in plan.keep_weights if s <= step}
            present = {int(p.stem.split("_")[1]) for p in files.staged_checkpoints.glob("step_*.pt")}
            if not expected <= present:
                # killed while finishing (weights already moved away): the state alone is not enough
                log.warning(
                    "%s: resume state lacks checkpoints %s; starting afresh", plan.label, sorted(expected - present)[:5]
                )
                shutil.rmtree(files.resume_dir)
                model, optimizer, step = _fresh_start(plan, device)
            else:
                log.info("%s: resuming from step %d (%s)", plan.label, step, files.state)
        else:
            log.warning("%s: resume state %s was written by another config; starting afresh", plan.label, files.state)
            shutil.rmtree(files.resume_dir)
    elif files.resume_dir.exists():
        shutil.rmtree(files.resume_dir)  # killed before the first state was saved
    files.staged_checkpoints.mkdir(parents=True, exist_ok=True)
    files.staged_predictions.mkdir(parents=True, exist_ok=True)
    for stale in files.staged_checkpoints.glob("step_*.pt"):
        if int(stale.stem.split("_")[1]) > step:
            stale.unlink()
    return model, optimizer, step


class _Recorder:
    """The checkpoint part of a run: probe predictions and weights at the scheduled steps,
    the resume state, and the declared outputs once the run is complete."""

    def __init__(
        self,
        plan: _RunPlan,
        files: RunFiles,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        probes: ProbeInputs,
        device: torch.device,
    ) -> None:
        self.plan, self.files, self.model, self.optimizer = plan, files, model, optimizer
        self.records: dict[int, dict[str, np.ndarray]] = {}
        self.config_json = plan.cfg.to_json()
        self.probe_tensors = {  # moved to the device once, not at every checkpoint
            name: (torch.as_tensor(x, device=device), torch.as_tensor(y, device=device))
            for name, x, y in (
                ("pred_root", probes.root_x, probes.root_y),
                ("pred_ood", probes.ood_x, probes.ood_y),
                ("pred_id", probes.id_x, probes.id_y),
            )
        }

    def record(self, step: int) -> None:
        """Predict every probe set at ``step``, and stage the weights when ``step`` keeps them."""
        self.records[step] = _predict_probes(self.model, self.probe_tensors, self.plan.cfg.evaluation.batch_size)
        self.stage_weights(step)

    def stage_weights(self, step: int) -> None:
        """Write the model's weights to ``.resume/checkpoints/`` when ``step`` is one that keeps them."""
        path = checkpoint_path(self.files.staged_checkpoints, step)
        if step in self.plan.keep_weights and not path.exists():
            save_checkpoint(
                path,
                self.model,
                step=step,
                M=self.plan.M,
                experiment_config=self.config_json,
                precision=self.plan.cfg.training.precision,
            )

    def save_state(self, step: int, *, pending: bool = False) -> None:
        """Flush the predictions recorded so far and write the full state to resume from
        (``pending``: to ``.resume/state.next.pt``, which a group moves into place once every
        member has written one)."""
        _flush_predictions(self.files.staged_predictions, self.records)
        atomic_torch_save(
            {
                "step": step,
                "M": float(self.plan.M),
                "fingerprint": self.plan.fingerprint,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
            },
            self.files.pending_state if pending else self.files.state,
        )

    def finish(self) -> None:
        """Stage the outputs (:meth:`stage_outputs`), then move them into place and drop ``.resume/``."""
        self.stage_outputs()
        plan = self.plan
        if not publish_staged_run(
            self.files.run_dir, fingerprint=plan.fingerprint, M=plan.M, step=plan.cfg.training.steps, label=plan.label
        ):
            raise RuntimeError(f"{plan.label}: outputs staged in {self.files.resume_dir} could not be published")

    def stage_outputs(self) -> None:
        """Write ``.resume/predictions.zarr`` from the flushed predictions, then ``.resume/complete.json``."""
        plan, files = self.plan, self.files
        total = plan.cfg.training.steps
        arrays = _load_predictions(files.staged_predictions, total)
        missing = sorted(plan.record_steps - set(arrays.get("step", np.array([], dtype=int)).tolist()))
        if missing:
            raise RuntimeError(
                f"{plan.label}: predictions missing at steps {missing[:5]}…; delete {files.resume_dir} and rerun"
            )
        write_dataset(_predictions_dataset(arrays, plan.cfg, plan.M), files.staged_store)
        mark_staged(files, fingerprint=plan.fingerprint, M=plan.M, step=total)
        log.info(
            "%s: done, %d checkpoints recorded, %d with weights", plan.label, len(plan.record_steps), len(plan.keep_weights)
        )


def _run_batch(
    cfg: ExperimentConfig, task_tensor: torch.Tensor | None, step: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's training batch at ``step``: ``x (B, K, D)``, ``y (B, K)`` (its train seed, ``T_M`` or None for M = inf)."""
    return sample_batch(
        task_tensor,
        seed=cfg.seeds.train,
        step=step,
        batch_size=cfg.training.batch_size,
        K=cfg.data.K,
        D=cfg.data.D,
        noise_variance=cfg.data.noise_variance,
        device=device,
    )


def _diverged(label: str, step: int, loss: float, lr: float, last_good_state: str) -> TrainingDivergedError:
    """The error for a NaN or infinite loss; ``last_good_state`` says where it is kept ("is kept in …")."""
    return TrainingDivergedError(
        f"training {label} diverged at step {step}: loss={loss}. Lower training.lr (now {lr}) or check the "
        f"data settings; the last good state {last_good_state}"
    )


def _log_progress(
    logger: logging.Logger, label: str, step: int, total: int, loss: float, lr: float, rate: float, group_size: int = 1
) -> None:
    """The progress line of a run (``benchmarks/bench_pipeline.py`` reads its steps/s and group size)."""
    group = f" (in a group of {group_size})" if group_size > 1 else ""
    eta = (total - step) / max(rate, 1e-9)
    logger.info("%s step %d/%d loss %.4f lr %.2e %.1f steps/s ETA %.0f s%s", label, step, total, loss, lr, rate, eta, group)


def _train_loop(
    plan: _RunPlan,
    recorder: _Recorder,
    tasks: np.ndarray,
    step: int,
    *,
    device: torch.device,
    stop_after: int | None,
    autocast: Callable[[], contextlib.AbstractContextManager],
) -> bool:
    """Train from ``step`` to ``training.steps``, recording and saving state on schedule.

    Returns whether the run reached its last step (``False`` when ``stop_after`` stopped it).
    """
    cfg, M, label = plan.cfg, plan.M, plan.label
    train_cfg = cfg.training
    total = train_cfg.steps
    model, optimizer = recorder.model, recorder.optimizer
    task_array = task_set(tasks, M)
    task_tensor = None if task_array is None else torch.as_tensor(task_array, dtype=torch.float32, device=device)
    model.train()
    started = time.perf_counter()
    started_step = step
    loss_sum, loss_count = 0.0, 0
    while step < total:
        if stop_after is not None and step >= stop_after:
            return False
        x, y = _run_batch(cfg, task_tensor, step, device)
        lr = learning_rate(step, total, train_cfg.lr, train_cfg.schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = train_step(model, optimizer, x, y, autocast)
        step += 1
        if step in plan.record_steps or step % train_cfg.log_every == 0 or step == total:
            loss_value = float(loss.detach())  # synchronises with the device: only now and then
            if not math.isfinite(loss_value):
                raise _diverged(label, step, loss_value, train_cfg.lr, f"is kept in {recorder.files.resume_dir}")
            loss_sum += loss_value
            loss_count += 1
        if step in plan.record_steps:
            recorder.record(step)
        if step % train_cfg.resume_every == 0 or step == total:
            recorder.save_state(step)
        if step % train_cfg.log_every == 0 or step == total:
            rate = (step - started_step) / max(time.perf_counter() - started, 1e-9)
            _log_progress(log, label, step, total, loss_sum / max(loss_count, 1), lr, rate)
            loss_sum, loss_count = 0.0, 0
    return True


def _train_run(
    cfg: ExperimentConfig,
    M: float,
    tasks: np.ndarray,
    probes: ProbeInputs,
    run_dir: str | Path,
    *,
    device: torch.device,
    stop_after: int | None,
    autocast: Callable[[], contextlib.AbstractContextManager],
) -> None:
    """The body of :func:`train_run`: resume (or start), train, and write the outputs when complete."""
    plan = _RunPlan.of(cfg, M)
    files = RunFiles(Path(run_dir))
    model, optimizer, step = _resume(plan, files, device)
    recorder = _Recorder(plan, files, model, optimizer, probes, device)
    if step == 0:
        recorder.record(0)
        recorder.save_state(0)
    if _train_loop(plan, recorder, tasks, step, device=device, stop_after=stop_after, autocast=autocast):
        recorder.finish()
