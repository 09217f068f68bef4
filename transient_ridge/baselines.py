"""The ``baselines`` stage: ridge and dMMSE_M predictions and losses on every probe set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from .data import task_set
from .predictors import dmmse_predict, per_token_mse, ridge_penalty_predict, ridge_predict
from .tasks import tasks_from_dataset

__all__ = ["bayes_predict", "build_baselines_dataset"]


def bayes_predict(
    x: np.ndarray, y: np.ndarray, tasks: np.ndarray, M: float, noise_variance: float, chunk_size: int
) -> np.ndarray:
    """The Bayes predictor for ``q_M``: dMMSE_M for finite M, ridge for ``M = ∞``. Shapes ``(B, K, D), (B, K) -> (B, K)``."""
    set_M = task_set(tasks, M)
    if set_M is None:
        return ridge_predict(x, y, noise_variance)
    return dmmse_predict(x, y, set_M, noise_variance, chunk_size=chunk_size)


def build_baselines_dataset(
    tasks_dataset: xr.Dataset, *, chunk_size: int = 1024, ridge_penalties: Sequence[float] | None = None
) -> xr.Dataset:
    """``baselines.zarr`` content (layout in docs/stores.md) from a tasks dataset.

    ``ridge_penalties`` (λ > 0, the ``families`` grid): also store ridge_λ's predictions
    on the root probe set, ``ridge_lambda_root(ridge_penalty, sequence, token)``, the
    path that the PCA projects.
    """
    tasks = tasks_from_dataset(tasks_dataset)
    noise_variance = float(tasks_dataset.attrs["noise_variance"])
    M_values = [float(m) for m in tasks_dataset["M"].values]
    root_x, root_y = tasks_dataset["root_x"].values, tasks_dataset["root_y"].values
    ood_x, ood_y = tasks_dataset["ood_x"].values, tasks_dataset["ood_y"].values
    id_x, id_y = tasks_dataset["id_x"].values, tasks_dataset["id_y"].values

    ridge_root = ridge_predict(root_x, root_y, noise_variance)
    ridge_ood = ridge_predict(ood_x, ood_y, noise_variance)
    ridge_id = np.stack([ridge_predict(id_x[i], id_y[i], noise_variance) for i in range(len(M_values))])

    def bayes(x: np.ndarray, y: np.ndarray, M: float) -> np.ndarray:
        return bayes_predict(x, y, tasks, M, noise_variance, chunk_size)

    dmmse_root = np.stack([bayes(root_x, root_y, M) for M in M_values])
    dmmse_ood = np.stack([bayes(ood_x, ood_y, M) for M in M_values])
    dmmse_id = np.stack([bayes(id_x[i], id_y[i], M) for i, M in enumerate(M_values)])

    dataset = xr.Dataset(
        {
            "ridge_root": (("sequence", "token"), ridge_root),
            "ridge_ood": (("ood_sequence", "token"), ridge_ood),
            "ridge_id": (("M", "id_sequence", "token"), ridge_id),
            "dmmse_root": (("M", "sequence", "token"), dmmse_root),
            "dmmse_ood": (("M", "ood_sequence", "token"), dmmse_ood),
            "dmmse_id": (("M", "id_sequence", "token"), dmmse_id),
            "loss_ridge_ood": (("token",), per_token_mse(ridge_ood, ood_y)),
            "loss_ridge_id": (("M", "token"), per_token_mse(ridge_id, id_y)),
            "loss_dmmse_ood": (("M", "token"), per_token_mse(dmmse_ood, ood_y)),
            "loss_dmmse_id": (("M", "token"), per_token_mse(dmmse_id, id_y)),
        },
        coords={name: tasks_dataset[name] for name in ("M", "token", "sequence", "ood_sequence", "id_sequence")},
        attrs={key: tasks_dataset.attrs[key] for key in tasks_dataset.attrs},
    )
    if ridge_penalties is not None:
        penalties = np.asarray(sorted(ridge_penalties), dtype=np.float64)
        dataset["ridge_lambda_root"] = (
            ("ridge_penalty", "sequence", "token"),
            ridge_penalty_predict(root_x, root_y, penalties),
        )
        dataset = dataset.assign_coords(ridge_penalty=penalties)
        dataset["ridge_lambda_root"].attrs["description"] = "ridge with penalty lambda on the root probe set"
    dataset.attrs["note"] = "dmmse_* at M=inf is ridge (the Bayes predictor for q_inf)"
    return dataset
