"""The ``evaluate`` stage: per-checkpoint metrics from a run's raw probe predictions.

Losses are MSE against the noisy targets; distances are mean squared
differences of predictions against ridge and against dMMSE_M on the run's
in-distribution probe set (Carroll et al. 2025, §3). ``t_crit`` is the step
of minimal OOD loss. Given a :class:`~transient_ridge.families.FamilyGrid`, the
store also holds the predictor families fitted to every checkpoint
(:func:`transient_ridge.families.build_family_fit`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .families import FamilyGrid, build_family_fit
from .predictors import per_token_mse

__all__ = ["critical_step", "build_outputs_dataset"]


def critical_step(steps: np.ndarray, loss_ood: np.ndarray) -> int:
    """``t_crit``: the step of minimal OOD loss (the first one on ties). Shapes ``(S,), (S,)``."""
    loss_ood = np.asarray(loss_ood, dtype=np.float64)
    if loss_ood.size == 0 or not np.isfinite(loss_ood).any():
        raise ValueError("t_crit needs at least one finite OOD loss")
    return int(np.asarray(steps)[np.nanargmin(loss_ood)])


def build_outputs_dataset(
    predictions: xr.Dataset, tasks: xr.Dataset, baselines: xr.Dataset, families: FamilyGrid | None = None
) -> xr.Dataset:
    """``outputs.zarr`` content (layout in docs/stores.md) for one run.

    Args:
        predictions: the run's ``predictions.zarr`` (``pred_root``, ``pred_ood``, ``pred_id`` over ``step``).
        tasks: ``tasks.zarr`` (probe inputs and targets).
        baselines: ``baselines.zarr`` (ridge and dMMSE_M predictions on the probe sets).
        families: the predictor-family grid to fit to every checkpoint; ``None`` leaves the
            fitted-family variables out.
    """
    M = float(predictions.attrs["M"])
    steps = predictions["step"].values
    pred_ood = predictions["pred_ood"].values  # (S, N_ood, K)
    pred_id = predictions["pred_id"].values  # (S, N_id, K)
    loss_ood_token = per_token_mse(pred_ood, tasks["ood_y"].values)
    loss_id_token = per_token_mse(pred_id, tasks["id_y"].sel(M=M).values)
    dist_ridge_token = per_token_mse(pred_id, baselines["ridge_id"].sel(M=M).values)
    dist_dmmse_token = per_token_mse(pred_id, baselines["dmmse_id"].sel(M=M).values)
    dataset = xr.Dataset(
        {
            "loss_ood": ("step", loss_ood_token.mean(axis=-1)),
            "loss_id": ("step", loss_id_token.mean(axis=-1)),
            "loss_ood_token": (("step", "token"), loss_ood_token),
            "loss_id_token": (("step", "token"), loss_id_token),
            "dist_ridge": ("step", dist_ridge_token.mean(axis=-1)),
            "dist_dmmse": ("step", dist_dmmse_token.mean(axis=-1)),
            "dist_ridge_token": (("step", "token"), dist_ridge_token),
            "dist_dmmse_token": (("step", "token"), dist_dmmse_token),
            "pred_root": (("step", "sequence", "token"), predictions["pred_root"].values),
        },
        coords={"step": steps, "token": predictions["token"].values, "sequence": predictions["sequence"].values},
        attrs=dict(predictions.attrs),
    )
    if families is not None:
        dataset = dataset.merge(build_family_fit(predictions, tasks, baselines, families), join="exact")
    dataset.attrs["M"] = M
    dataset.attrs["t_crit"] = critical_step(steps, dataset["loss_ood"].values)
    for name, text in {
        "loss_ood": "MSE on the q_inf probe set",
        "loss_id": "MSE on the q_M probe set",
        "dist_ridge": "mean squared prediction difference to ridge on the q_M probe set",
        "dist_dmmse": "mean squared prediction difference to dMMSE_M on the q_M probe set",
        "pred_root": "predictions on the root (q_1) probe set, the PCA's input",
    }.items():
        dataset[name].attrs["description"] = text
    return dataset
