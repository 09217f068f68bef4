"""The ``llc_calibration`` rule: the calibration points stacked into one store, and the ε the rule chooses.

xarray and numpy only: the fits happen in the ``llc_calibration_point`` jobs
(:func:`~._stage.build_calibration_point`, one per run and checkpoint, side by side
on separate cores); this step only stacks their records and applies
:func:`~._calibration.choose_epsilon`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..config import ExperimentConfig, format_task_count
from ..store import provenance_attrs
from ._calibration import PLATEAU_TOLERANCE, choose_epsilon
from ._diagnostics import NO_ESTIMATE, STATUSES
from ._steps import calibration_settings, calibration_steps

__all__ = ["combine_calibration_points"]

log = logging.getLogger(__name__)


def _status_names(codes: np.ndarray) -> np.ndarray:
    """Status strings of int8 codes (``""`` where there is no estimate)."""
    names = np.array(list(STATUSES) + [""], dtype=object)
    codes = np.asarray(codes, dtype=np.int64)
    return names[np.where(codes == NO_ESTIMATE, len(STATUSES), codes)].astype(str)


def combine_calibration_points(cfg: ExperimentConfig, points: Sequence[xr.Dataset]) -> xr.Dataset:
    """``llc_calibration.zarr``: the points' records over ``(M, step, epsilon, gamma, chain, draw)`` and the choice.

    ``points`` are :func:`~._stage.build_calibration_point` datasets, one per
    ``llc.calibration.M`` × :func:`~._steps.calibration_steps` pair (any order; a
    missing or extra point raises ``ValueError`` naming it). The choice
    (:func:`~._calibration.choose_epsilon` at ``llc.gamma``) is the 0-d variable
    ``chosen_epsilon`` (NaN when every estimate failed) with ``healthy``, ``plateau``,
    ``accepted`` per ``(M, step, epsilon)``, ``eligible`` per ``(M, step)`` and the
    attributes ``rule_satisfied`` (0/1) and ``choice_reason``; ``config`` records the
    whole experiment, all seeds (this store is often the one written last, which is what
    ``archive create`` records).
    """
    narrowed = cfg.for_seed(cfg.seeds.calibration_seed)
    grid = narrowed.llc.calibration
    at = [int(s) for s in calibration_steps(narrowed)]
    by_point = {(float(p["M"]), int(p["step"])): p for p in points}
    wanted = [(float(M), step) for M in grid.M for step in at]
    missing = [f"M={format_task_count(M)} step {step}" for M, step in wanted if (M, step) not in by_point]
    extra = [f"M={format_task_count(M)} step {step}" for M, step in by_point if (M, step) not in set(wanted)]
    if missing or extra:
        raise ValueError(f"calibration points do not match llc.calibration: missing {missing}, unexpected {extra}")
    rows = [xr.concat([by_point[(float(M), step)] for step in at], dim="step", combine_attrs="drop_conflicts")
            for M in grid.M]
    combined = xr.concat(rows, dim="M", combine_attrs="drop_conflicts")

    g = grid.gamma.index(narrowed.llc.gamma) if narrowed.llc.gamma in grid.gamma else 0
    at_gamma = combined.isel(gamma=g)
    shape = (len(grid.M), len(at), len(grid.epsilon))
    labels = [f"M={format_task_count(M)} step {step}" for M in grid.M for step in at]
    final = np.broadcast_to(np.array(at) == narrowed.training.steps, shape[:2]).reshape(-1)
    choice = choose_epsilon(
        np.asarray(grid.epsilon),
        at_gamma["llc_mean"].values.reshape(-1, shape[2]),
        at_gamma["llc_sem"].values.reshape(-1, shape[2]),
        _status_names(at_gamma["status"].values).reshape(-1, shape[2]),
        final,
        labels,
    )
    (log.info if choice.rule_satisfied else log.warning)("calibration chose epsilon=%g: %s", choice.epsilon, choice.reason)
    settings_attrs = dict(points[0].attrs)
    dims3 = ("M", "step", "epsilon")
    combined = combined.assign({
        "healthy": (dims3, choice.healthy.reshape(shape)),
        "plateau": (dims3, choice.plateau.reshape(shape)),
        "accepted": (dims3, choice.accepted.reshape(shape)),
        "eligible": (("M", "step"), choice.eligible.reshape(shape[:2])),
        "chosen_epsilon": ((), choice.epsilon),
    })
    settings = calibration_settings(narrowed)
    lengths = np.array([[settings.chain_length(e, gm) for gm in grid.gamma] for e in grid.epsilon])
    combined["num_burnin"] = (("epsilon", "gamma"), lengths[..., 0], {"description": "burn-in steps: burnin_time/(ε γ)"})
    combined["num_draws"] = (("epsilon", "gamma"), lengths[..., 1],
                             {"description": "draws: draw_time/(ε γ)/steps_between_draws"})
    combined.attrs = {
        **{k: v for k, v in settings_attrs.items() if k not in ("errors", "provenance", "config")},
        "chosen_gamma": float(grid.gamma[g]),
        "rule_satisfied": int(choice.rule_satisfied),
        "choice_reason": choice.reason,
        "plateau_tolerance": PLATEAU_TOLERANCE,
        "errors": [e for M in grid.M for step in at for e in by_point[(float(M), step)].attrs.get("errors", [])],
        **provenance_attrs(cfg.name, cfg.to_json()),
    }
    return combined
