"""Which checkpoints the LLC stage estimates and the calibration sweeps (numpy only: the workflow
lists these jobs when it builds its DAG)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..config import ConfigError, ExperimentConfig, LLCConfig
from ..schedule import checkpoint_steps, log_spaced_subset, weight_steps

__all__ = ["llc_steps", "calibration_steps", "calibration_settings"]


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
