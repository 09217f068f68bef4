"""Step schedules: which steps are checkpoints, and the learning rate at each step.

Both are pure functions of the step, so a resumed run needs no scheduler state. This
module imports nothing from the package (``config`` imports it to check step counts):
a schedule is anything with the fields of :class:`LRSchedule`, such as
``config.ScheduleConfig``.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

__all__ = ["LRSchedule", "checkpoint_steps", "weight_steps", "learning_rate", "log_spaced_subset"]


class LRSchedule(Protocol):
    """The fields :func:`learning_rate` reads (``config.ScheduleConfig`` has them)."""

    kind: str
    warmup_steps: int
    pct_start: float
    final_lr_fraction: float


def checkpoint_steps(total_steps: int, linear_interval: int, log_count: int) -> np.ndarray:
    """Union of linear steps ``{0, Δ, 2Δ, …, T}`` and log steps ``{⌊T^{j/(N−1)}⌋ : j = 0..N−1}``.

    Carroll et al. 2025 (App. A): with ``T = 150 000``, ``Δ = 100`` and
    ``N = 1000`` this gives 2203 distinct steps. ``T`` is always included.

    Returns:
        sorted unique int64 steps in ``[0, T]``.
    """
    if total_steps < 1 or linear_interval < 1 or log_count < 2:
        raise ValueError(
            f"need total_steps >= 1, linear_interval >= 1, log_count >= 2; "
            f"got {total_steps}, {linear_interval}, {log_count}"
        )
    linear = np.arange(0, total_steps + 1, linear_interval, dtype=np.int64)
    exponents = np.arange(log_count, dtype=np.float64) / (log_count - 1)
    # T^(j/(N-1)) in float64 can land a hair below an exact integer; nudge before flooring.
    log_values = np.exp(exponents * math.log(total_steps))
    log_steps = np.floor(log_values * (1 + 1e-12)).astype(np.int64)
    return np.unique(np.concatenate([linear, log_steps, [total_steps]]))


def weight_steps(steps: np.ndarray, every: int) -> np.ndarray:
    """The checkpoint steps that keep model weights: every ``every``-th one, plus the last."""
    steps = np.asarray(steps)
    if every < 1:
        raise ValueError(f"weights_every={every} must be >= 1")
    return np.unique(np.concatenate([steps[::every], steps[-1:]]))


def log_spaced_subset(steps: np.ndarray, count: int) -> np.ndarray:
    """About ``count`` steps spread evenly in log(step + 1) over ``steps``; always the last one."""
    steps = np.asarray(steps)
    if count >= len(steps):
        return steps.copy()
    if count == 1:
        return steps[-1:].copy()
    targets = np.linspace(np.log1p(steps[0]), np.log1p(steps[-1]), count)
    index = np.abs(np.log1p(steps)[None, :] - targets[:, None]).argmin(axis=1)
    return np.unique(np.concatenate([steps[index], steps[-1:]]))


def learning_rate(step: int, total_steps: int, peak_lr: float, schedule: LRSchedule) -> float:
    """Learning rate used for the update taken at ``step`` (0-based).

    Kinds:
        ``constant``: ``peak_lr`` throughout.
        ``warmup_constant``: linear from ``peak_lr/warmup_steps`` up to ``peak_lr`` over
            ``warmup_steps``, then constant.
        ``one_cycle``: linear warm-up from ``peak_lr/25`` to ``peak_lr`` over the first
            ``pct_start`` of training, then cosine annealing to ``final_lr_fraction·peak_lr``
            (the shape of ``torch.optim.lr_scheduler.OneCycleLR`` with linear warm-up).
    """
    if schedule.kind == "constant":
        return peak_lr
    if schedule.kind == "warmup_constant":
        if step < schedule.warmup_steps:
            return peak_lr * (step + 1) / schedule.warmup_steps
        return peak_lr
    if schedule.kind == "one_cycle":
        warmup = max(1, int(round(schedule.pct_start * total_steps)))
        initial = peak_lr / 25.0
        final = schedule.final_lr_fraction * peak_lr
        if step < warmup:
            return initial + (peak_lr - initial) * step / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return final + (peak_lr - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule kind {schedule.kind!r} is not one of constant, warmup_constant, one_cycle")
