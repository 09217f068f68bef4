"""Idealized in-context predictors: ridge regression and dMMSE_M.

For the prediction at position ``k`` the predictors see the prefix
``(X, Y)`` of the ``k − 1`` earlier pairs and the query ``x_k``
(Carroll et al. 2025, §2; Raventós et al. 2023):

- ridge: ``t̂ = (XᵀX + σ² I)⁻¹ XᵀY`` (``0`` for an empty prefix), the Bayes
  posterior mean under the Gaussian task prior ``q_∞``;
- dMMSE_M: ``t̂ = Σ_m softmax_m(−‖Y − X t_m‖² / 2σ²) t_m`` (the mean task for an
  empty prefix), the posterior mean under ``q_M = Uniform(T_M)``.

Both are vectorized over a batch and all ``K`` prefixes at once, in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ridge_predict", "dmmse_predict", "per_token_mse"]


def _exclusive_cumsum(values: np.ndarray, axis: int) -> np.ndarray:
    """Cumulative sum that excludes the current element (the prefix *before* each position)."""
    total = np.cumsum(values, axis=axis)
    return total - values


def ridge_predict(x: np.ndarray, y: np.ndarray, noise_variance: float) -> np.ndarray:
    """Ridge predictions for every prefix.

    Args:
        x: inputs ``(B, K, D)``.
        y: targets ``(B, K)``.
        noise_variance: ``σ² > 0``, the ridge penalty.
    Returns:
        ``(B, K)`` float64: entry ``k`` is ``x_k · t̂`` fitted on pairs ``1..k−1``.
    """
    if noise_variance <= 0:
        raise ValueError(f"noise_variance={noise_variance} must be > 0 for ridge")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    D = x.shape[-1]
    gram = _exclusive_cumsum(np.einsum("bkd,bke->bkde", x, x), axis=1)  # (B, K, D, D)
    moment = _exclusive_cumsum(x * y[..., None], axis=1)  # (B, K, D)
    gram += noise_variance * np.eye(D)
    task_hat = np.linalg.solve(gram, moment[..., None])[..., 0]  # (B, K, D)
    return np.einsum("bkd,bkd->bk", task_hat, x)


def dmmse_predict(
    x: np.ndarray,
    y: np.ndarray,
    tasks: np.ndarray,
    noise_variance: float,
    *,
    chunk_size: int = 1024,
) -> np.ndarray:
    """dMMSE_M predictions for every prefix, chunked over tasks.

    The posterior weights are a softmax over tasks of ``−S_km / 2σ²`` with
    ``S_km = Σ_{j<k} (y_j − t_m·x_j)²``; it is accumulated over chunks of
    tasks with a running log-sum-exp, so memory is ``O(B·K·chunk_size)``.

    Args:
        x: inputs ``(B, K, D)``.
        y: targets ``(B, K)``.
        tasks: ``T_M`` as ``(M, D)``.
        noise_variance: ``σ² > 0``.
        chunk_size: tasks per chunk.
    Returns:
        ``(B, K)`` float64 predictions ``x_k · E[t | prefix]``.
    """
    if noise_variance <= 0:
        raise ValueError(f"noise_variance={noise_variance} must be > 0 for dMMSE")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    tasks = np.asarray(tasks, dtype=np.float64)
    B, K, _ = x.shape
    running_max = np.full((B, K), -np.inf)
    weight_sum = np.zeros((B, K))
    weighted_prediction = np.zeros((B, K))
    for start in range(0, tasks.shape[0], chunk_size):
        chunk = tasks[start : start + chunk_size]
        task_outputs = np.einsum("bkd,md->bkm", x, chunk)  # (B, K, c): t_m · x_k
        squared_residuals = (y[..., None] - task_outputs) ** 2
        logits = -_exclusive_cumsum(squared_residuals, axis=1) / (2.0 * noise_variance)
        new_max = np.maximum(running_max, logits.max(axis=-1))
        rescale = np.exp(running_max - new_max)
        weights = np.exp(logits - new_max[..., None])
        weight_sum = weight_sum * rescale + weights.sum(axis=-1)
        weighted_prediction = weighted_prediction * rescale + (weights * task_outputs).sum(axis=-1)
        running_max = new_max
    return weighted_prediction / weight_sum


def per_token_mse(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean squared error per token over the leading (sequence) axis: ``(..., B, K) -> (..., K)``."""
    return np.mean((np.asarray(predictions, np.float64) - np.asarray(targets, np.float64)) ** 2, axis=-2)
