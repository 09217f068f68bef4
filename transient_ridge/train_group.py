"""Several training runs of one experiment as one batched computation (``training.group_size``).

A model this small spends a CPU training step on per-operation overhead, not on
arithmetic: ``C`` runs stepped together through :func:`~transient_ridge.model.stacked_forward`
(every matmul one batched matmul over runs) and one fused Adam over stacked weights cost
far less than ``C`` steps one after another (``benchmarks/bench_training.py --ensemble``).

Each member is still its own run: its own M, train seed, init seed, batches
(:func:`~transient_ridge.data.sample_batch` of its seed and step), loss, Adam state, run
directory, checkpoints, predictions and resume state, written exactly as
:func:`transient_ridge.train.train_run` writes them. Adam is elementwise and the loss is a
sum of the members' own mean losses, so each member follows its own training; it computes
what training it alone computes up to float rounding (batched kernels sum in another order;
``tests/test_train_group.py`` compares them). A group saves its members' states as one step
(each to a pending file, then all moved into place), so a killed group resumes every member
from one step, bit-identically; members whose states are at different steps all the same
(runs regrouped after a change of the grid) are brought to a common step first.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ExperimentConfig
from .data import task_set
from .model import stacked_forward
from .precision import training_precision
from .run_files import RunFiles, publish_staged_run, staged_for
from .schedule import learning_rate
from .train import (
    ProbeInputs,
    _diverged,
    _log_progress,
    _Recorder,
    _resume,
    _run_batch,
    _RunPlan,
    model_config_for,
    new_optimizer,
)

__all__ = ["GroupMember", "train_group"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupMember:
    """One run of a group: its config (narrowed to one seed: ``cfg.for_seed(seed)``), M, task
    sequence ``(M_max, D)`` (``tasks_from_dataset`` of its run's tasks store), probe sets and directory."""

    cfg: ExperimentConfig
    M: float
    tasks: np.ndarray
    probes: ProbeInputs
    run_dir: Path


# The sections every member must share to be stepped as one computation (the rest, M and seeds, may differ).
_SHARED_SECTIONS = ("data.D", "data.K", "data.noise_variance", "model", "training", "checkpoints", "evaluation")


def train_group(
    members: Sequence[GroupMember],
    *,
    device: torch.device | str = "cpu",
    publish: Sequence[int] | None = None,
    stop_after: int | None = None,
) -> None:
    """Train every member to ``training.steps`` as one batched computation, staging each one's outputs.

    Resumes each member from its own ``.resume/state.pt`` (as :func:`transient_ridge.train.train_run`
    does); a member already trained and staged under the same settings is left as it is. When
    all are trained, each member's outputs are staged in its ``.resume/``; the members at
    the indices ``publish`` (default: all) are then moved into place. The others are left for
    their own ``train`` job to publish (:func:`transient_ridge.run_files.publish_staged_run`).

    Args:
        stop_after: stop (as if killed) once this step is reached; for tests.

    Raises:
        ValueError: the members differ in a shared section (model, training, ...) or repeat a directory.
        TrainingDivergedError: a member's loss became NaN or infinite (names its M and the step).
    """
    if not members:
        raise ValueError("train_group needs at least one member")
    shared = {member.cfg.fingerprint(_SHARED_SECTIONS) for member in members}
    if len(shared) > 1:
        raise ValueError(f"members of one training group must share the sections {_SHARED_SECTIONS}")
    if len({Path(member.run_dir).resolve() for member in members}) < len(members):
        raise ValueError("members of one training group need distinct run directories")
    for member in members:
        member.cfg.seeds.require_single(f"training group member M={member.M}")
    cfg = members[0].cfg
    with training_precision(cfg.training.precision, device) as autocast:
        finished = _train_members(members, torch.device(device), stop_after, autocast)
    if not finished:
        return
    for index in range(len(members)) if publish is None else publish:
        member = members[index]
        plan = _RunPlan.of(member.cfg, member.M)
        if not publish_staged_run(
            member.run_dir, fingerprint=plan.fingerprint, M=member.M, step=cfg.training.steps, label=plan.label
        ):
            raise RuntimeError(f"{plan.label}: outputs staged in {RunFiles(Path(member.run_dir)).resume_dir} could not be published")


def _train_members(
    members: Sequence[GroupMember],
    device: torch.device,
    stop_after: int | None,
    autocast: Callable[[], contextlib.AbstractContextManager],
) -> bool:
    """Resume every member, train them to the last step (common steps first), stage their outputs."""
    total = members[0].cfg.training.steps
    _settle_pending_states([RunFiles(Path(member.run_dir)) for member in members])
    recorders, steps = [], []
    for member in members:
        plan = _RunPlan.of(member.cfg, member.M)
        files = RunFiles(Path(member.run_dir))
        if staged_for(files, fingerprint=plan.fingerprint, M=member.M, step=total):
            log.info("%s: already trained and staged in %s", plan.label, files.resume_dir)
            recorders.append(None)
            steps.append(total)
            continue
        model, optimizer, step = _resume(plan, files, device)
        recorder = _Recorder(plan, files, model, optimizer, member.probes, device)
        if step == 0:
            recorder.record(0)
            recorder.save_state(0)
        recorders.append(recorder)
        steps.append(step)
    while True:
        pending = [i for i, step in enumerate(steps) if step < total]
        if not pending:
            break
        start = min(steps[i] for i in pending)
        active = [i for i in pending if steps[i] == start]
        end = min([steps[i] for i in pending if steps[i] > start], default=total)
        if end < total:
            log.warning(
                "%s resume from step %d, the others from later: training them to step %d first",
                ", ".join(recorders[i].plan.label for i in active),
                start,
                end,
            )
        reached = _StackedRuns([recorders[i] for i in active], [members[i].tasks for i in active], device).train(
            start, end, stop_after=stop_after, autocast=autocast
        )
        if not reached:
            return False
        for i in active:
            steps[i] = end
    for recorder in recorders:
        if recorder is not None:
            recorder.stage_outputs()
    return True


def _save_states_together(recorders: Sequence[_Recorder], step: int) -> None:
    """Save every member's state at ``step`` as one step: each to its pending file first, then all moved
    into place. A kill in between leaves states that :func:`_settle_pending_states` completes or drops,
    so a killed group resumes with every member at one step, and exactly."""
    for recorder in recorders:
        recorder.save_state(step, pending=True)
    for recorder in recorders:
        os.replace(recorder.files.pending_state, recorder.files.state)


def _saved_step(path: Path) -> int | None:
    if not path.exists():
        return None
    return int(torch.load(path, map_location="cpu", weights_only=False)["step"])


def _settle_pending_states(files: Sequence[RunFiles]) -> None:
    """Finish or undo a group save that a kill interrupted (:func:`_save_states_together`).

    If the newest pending step ``t`` was reached by every member (a pending file at ``t``, or a state
    already moved into place at ``t``), the pending files are moved into place; otherwise they are
    removed and every member resumes from its previous state.
    """
    pending = [_saved_step(f.pending_state) for f in files]
    if all(step is None for step in pending):
        return
    newest = max(step for step in pending if step is not None)
    complete = all(p == newest or (p is None and _saved_step(f.state) == newest) for f, p in zip(files, pending))
    for f, step in zip(files, pending):
        if step is None:
            continue
        if complete:
            os.replace(f.pending_state, f.state)
        else:
            f.pending_state.unlink()
    log.info("a group save at step %d was interrupted: %s", newest, "completed" if complete else "undone")


class _StackedRuns:
    """The active members' weights and Adam state stacked on a leading member axis ``C``.

    ``params[name]`` is a ``(C, *shape)`` leaf; one ``torch.optim.Adam`` (fused) steps them all.
    :meth:`write_back` copies weights (and optimizer state) into each member's own model and
    optimizer, which the recorders save.
    """

    def __init__(self, recorders: Sequence[_Recorder], tasks: Sequence[np.ndarray], device: torch.device) -> None:
        self.recorders = list(recorders)
        self.device = device
        first = self.recorders[0]
        self.cfg = first.plan.cfg
        self.model_config = model_config_for(self.cfg)
        self.names = [name for name, _ in first.model.named_parameters()]
        members = [dict(r.model.named_parameters()) for r in self.recorders]
        stacked = torch.nn.ParameterList(torch.stack([m[name].detach() for m in members]) for name in self.names)
        self.params = dict(zip(self.names, stacked))
        self.optimizer = new_optimizer(stacked, self.cfg)  # parameters in the members' order: their states line up
        self._load_optimizer_state([r.optimizer for r in self.recorders])
        self.task_tensors = [
            None if (t := task_set(tasks_i, r.plan.M)) is None else torch.as_tensor(t, dtype=torch.float32, device=device)
            for tasks_i, r in zip(tasks, self.recorders)
        ]
        self.probes = {
            name: (
                torch.stack([r.probe_tensors[name][0] for r in self.recorders]),
                torch.stack([r.probe_tensors[name][1] for r in self.recorders]),
            )
            for name in first.probe_tensors
        }

    def _load_optimizer_state(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        states = [opt.state_dict()["state"] for opt in optimizers]
        if not states[0]:
            return  # fresh: nothing stepped yet
        stacked = {}
        for index in states[0]:
            steps = {float(state[index]["step"]) for state in states}
            if len(steps) != 1:
                raise RuntimeError(f"members' Adam states are at different steps {sorted(steps)}")
            stacked[index] = {
                "step": states[0][index]["step"].clone(),
                "exp_avg": torch.stack([state[index]["exp_avg"] for state in states]),
                "exp_avg_sq": torch.stack([state[index]["exp_avg_sq"] for state in states]),
            }
        full = self.optimizer.state_dict()
        full["state"] = stacked
        self.optimizer.load_state_dict(full)

    @torch.no_grad()
    def write_back(self, *, optimizer: bool) -> None:
        """Copy each member's slice of the stacked weights (and, if asked, Adam state) into its own model."""
        state = self.optimizer.state_dict()["state"] if optimizer else None
        for c, recorder in enumerate(self.recorders):
            own = dict(recorder.model.named_parameters())
            for name in self.names:
                own[name].copy_(self.params[name][c])
            if state:
                full = recorder.optimizer.state_dict()
                full["state"] = {
                    index: {
                        "step": entry["step"].clone(),
                        "exp_avg": entry["exp_avg"][c].clone(),
                        "exp_avg_sq": entry["exp_avg_sq"][c].clone(),
                    }
                    for index, entry in state.items()
                }
                recorder.optimizer.load_state_dict(full)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's own batch at ``step``, stacked: ``x (C, B, K, D)``, ``y (C, B, K)``."""
        pairs = [
            _run_batch(recorder.plan.cfg, task_tensor, step, self.device)
            for recorder, task_tensor in zip(self.recorders, self.task_tensors)
        ]
        return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

    @torch.no_grad()
    def predict_probes(self) -> list[dict[str, np.ndarray]]:
        """Every member's predictions on its probe sets, as :func:`transient_ridge.train.predict` gives them."""
        size = self.cfg.evaluation.batch_size
        params = {name: p.detach() for name, p in self.params.items()}
        per_set = {}
        for name, (x, y) in self.probes.items():
            parts = [
                stacked_forward(self.model_config, params, x[:, start : start + size], y[:, start : start + size])
                for start in range(0, x.shape[1], size)
            ]
            per_set[name] = torch.cat(parts, dim=1).float().cpu().numpy()  # (C, N, K)
        return [{name: values[c] for name, values in per_set.items()} for c in range(len(self.recorders))]

    def train(
        self,
        step: int,
        end: int,
        *,
        stop_after: int | None,
        autocast: Callable[[], contextlib.AbstractContextManager],
    ) -> bool:
        """Train from ``step`` to ``end``, recording and saving every member on schedule.

        Returns whether ``end`` was reached (``False`` when ``stop_after`` stopped it).
        """
        train_cfg = self.cfg.training
        total = train_cfg.steps
        plan = self.recorders[0].plan  # record and weight steps are shared (same training and checkpoints)
        labels = [r.plan.label for r in self.recorders]
        log.info("training %s together from step %d to %d", ", ".join(labels), step, end)
        started, started_step = time.perf_counter(), step
        loss_sums = torch.zeros(len(self.recorders), dtype=torch.float64)
        loss_count = 0
        while step < end:
            if stop_after is not None and step >= stop_after:
                return False
            x, y = self.batch(step)
            lr = learning_rate(step, total, train_cfg.lr, train_cfg.schedule)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            with autocast():
                losses = torch.mean((stacked_forward(self.model_config, self.params, x, y) - y) ** 2, dim=(1, 2))
            self.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # each member's gradient is that of its own mean loss
            self.optimizer.step()
            step += 1
            if step in plan.record_steps or step % train_cfg.log_every == 0 or step == total:
                values = losses.detach().double().cpu()
                for label, value in zip(labels, values.tolist()):
                    if not math.isfinite(value):
                        raise _diverged(label, step, value, train_cfg.lr, "of every run of its group is kept in its .resume/")
                loss_sums += values
                loss_count += 1
            if step in plan.record_steps:
                for recorder, predictions in zip(self.recorders, self.predict_probes()):
                    recorder.records[step] = predictions
                if step in plan.keep_weights:
                    self.write_back(optimizer=False)
                    for recorder in self.recorders:
                        recorder.stage_weights(step)
            if step % train_cfg.resume_every == 0 or step == total or step == end:
                self.write_back(optimizer=True)
                _save_states_together(self.recorders, step)
            if step % train_cfg.log_every == 0 or step == total:
                rate = (step - started_step) / max(time.perf_counter() - started, 1e-9)
                for label, loss_sum in zip(labels, loss_sums.tolist()):
                    _log_progress(log, label, step, total, loss_sum / max(loss_count, 1), lr, rate, len(labels))
                loss_sums.zero_()
                loss_count = 0
        return True
