"""Idealized in-context predictors: ridge regression, dMMSE_M and three predictor families.

For the prediction at position ``k`` the predictors see the prefix
``(X, Y)`` of the ``n = k − 1`` earlier pairs and the query ``x_k``
(Carroll et al. 2025, §2; Raventós et al. 2023):

- ridge: ``t̂ = (XᵀX + σ² I)⁻¹ XᵀY`` (``0`` for an empty prefix), the Bayes
  posterior mean under the Gaussian task prior ``q_∞``;
- dMMSE_M: ``t̂ = Σ_m softmax_m(−‖Y − X t_m‖² / 2σ²) t_m`` (the mean task for an
  empty prefix), the posterior mean under ``q_M = Uniform(T_M)``.

The families that the fitting stage (:mod:`transient_ridge.families`) compares a
model with, candidates for what an in-context learner computes (Akyürek et al.
2022; von Oswald et al. 2023):

- ridge_λ (:func:`ridge_penalty_predict`): ``t̂ = (XᵀX + λ I)⁻¹ XᵀY``; ridge is λ = σ²;
- GD-k (:func:`gd_predict`): ``k`` steps of gradient descent from ``w = 0`` with step
  ``η`` on the prefix loss ``L(w) = ‖Y − Xw‖² / 2n``;
- least squares (:func:`least_squares_predict`): the minimum-norm minimiser of ``L``.

The three are spectral filters of the prefix Gram matrix ``XᵀX = Σ_i s_i u_i u_iᵀ``:
with ``c_i = (x_k·u_i)(u_i·XᵀY)`` (:func:`prefix_spectra`) each predicts
``Σ_i c_i h(s_i)``, with ``h = 1/(s + λ)``, ``(η/n) Σ_{j<k} (1 − ηs/n)^j`` and
``1/s`` (0 on the null space) respectively; that is how they are computed here.

All are vectorized over a batch and all ``K`` prefixes at once, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ridge_predict",
    "dmmse_predict",
    "per_token_mse",
    "PrefixSpectra",
    "prefix_spectra",
    "ridge_penalty_predict",
    "gd_predict",
    "least_squares_predict",
    "least_squares_defined",
    "LEAST_SQUARES_RTOL",
]

# Eigenvalues of a prefix Gram matrix below this fraction of its largest are its null
# space in least squares (eigh's error is about 1e-16 of the largest eigenvalue).
LEAST_SQUARES_RTOL = 1e-10


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


@dataclass(frozen=True)
class PrefixSpectra:
    """The prefix Gram matrices of a batch in their eigenbasis: what every family filters.

    For position ``k`` (prefix of ``n = k − 1`` pairs, Gram ``XᵀX = Σ_i s_i u_i u_iᵀ``):

    Attributes:
        eigenvalues: ``s_i``, ``(B, K, D)`` float64, ascending, clipped at 0 (all 0 for
            the empty prefix).
        weights: ``c_i = (x_k·u_i)(u_i·XᵀY)``, ``(B, K, D)`` float64 (0 for the empty prefix).
        prefix_length: ``n``, ``(K,)`` int64: ``0, 1, …, K − 1``.
    """

    eigenvalues: np.ndarray
    weights: np.ndarray
    prefix_length: np.ndarray


def prefix_spectra(x: np.ndarray, y: np.ndarray) -> PrefixSpectra:
    """:class:`PrefixSpectra` of every prefix: inputs ``(B, K, D)``, targets ``(B, K)``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    gram = _exclusive_cumsum(np.einsum("bkd,bke->bkde", x, x), axis=1)  # (B, K, D, D)
    moment = _exclusive_cumsum(x * y[..., None], axis=1)  # (B, K, D): XᵀY
    eigenvalues, vectors = np.linalg.eigh(gram)  # (B, K, D), (B, K, D, D): columns u_i
    weights = np.einsum("bkd,bkdi->bki", x, vectors) * np.einsum("bkd,bkdi->bki", moment, vectors)
    return PrefixSpectra(np.clip(eigenvalues, 0.0, None), weights, np.arange(x.shape[1], dtype=np.int64))


def _spectra(x_or_spectra: np.ndarray | PrefixSpectra, y: np.ndarray | None) -> PrefixSpectra:
    if isinstance(x_or_spectra, PrefixSpectra):
        return x_or_spectra
    if y is None:
        raise ValueError("give the targets y with the inputs x, or a PrefixSpectra alone")
    return prefix_spectra(x_or_spectra, y)


def ridge_penalty_predict(
    x: np.ndarray | PrefixSpectra, y: np.ndarray | None, penalties: np.ndarray | list[float]
) -> np.ndarray:
    """ridge_λ predictions for every prefix and every penalty ``λ``: ``t̂ = (XᵀX + λI)⁻¹ XᵀY``.

    The Gram matrix is not normalised by the prefix length, as in :func:`ridge_predict`,
    which is ridge_λ at ``λ = σ²``.

    Args:
        x: inputs ``(B, K, D)``, or their :class:`PrefixSpectra` (then ``y`` is ``None``).
        y: targets ``(B, K)``.
        penalties: ``λ > 0``, shape ``(L,)``.
    Returns:
        ``(L, B, K)`` float64: entry ``[l, b, k]`` is ``x_k · t̂`` at penalty ``λ_l`` on pairs ``1..k−1``
        (0 for the empty prefix).
    """
    penalties = np.asarray(penalties, dtype=np.float64).reshape(-1)
    if not np.all(penalties > 0):
        raise ValueError(
            f"ridge penalties {penalties.tolist()} must all be > 0; λ → 0 is least squares (least_squares_predict)"
        )
    spectra = _spectra(x, y)
    filters = 1.0 / (spectra.eigenvalues[None] + penalties[:, None, None, None])  # (L, B, K, D)
    return np.einsum("bki,lbki->lbk", spectra.weights, filters)


def gd_predict(
    x: np.ndarray | PrefixSpectra,
    y: np.ndarray | None,
    step_sizes: np.ndarray | list[float],
    steps: np.ndarray | list[int],
) -> np.ndarray:
    """GD-k predictions: ``k`` steps of in-context gradient descent from ``w = 0``.

    The loss on a prefix of ``n ≥ 1`` pairs is ``L(w) = ‖Y − Xw‖² / 2n``, so
    ``∇L(w) = A w − b`` with ``A = XᵀX / n`` and ``b = XᵀY / n``, and each step is
    ``w ← w − η ∇L(w)``. After ``k`` steps from 0 (a closed form):
    ``t̂_k = Σ_{j<k} (I − ηA)^j η b``. One step gives ``t̂_1 = η XᵀY / n``: the
    prediction ``η x_kᵀ XᵀY / n`` of one layer of linear self-attention in the
    construction of von Oswald et al. (2023, Prop. 1, whose loss has the same 1/2n).
    Normalising by ``n`` keeps one ``η`` meaningful across prefix lengths: ``A → I``
    as ``n`` grows, so GD converges for ``η < 2 / s_max(A)`` (about 1 for long prefixes)
    and ``k η`` is the gradient-flow time. The empty prefix predicts 0. GD at
    ``η s_max(A) > 2`` diverges; its predictions are returned as computed, never clipped
    (``inf`` or NaN once they overflow float64).

    Args:
        x: inputs ``(B, K, D)``, or their :class:`PrefixSpectra` (then ``y`` is ``None``).
        y: targets ``(B, K)``.
        step_sizes: ``η > 0``, shape ``(E,)``.
        steps: ``k ≥ 1``, shape ``(S,)`` (any order; each is reported where it is given).
    Returns:
        ``(E, S, B, K)`` float64 predictions ``x_k · t̂_k``.
    """
    step_sizes = np.asarray(step_sizes, dtype=np.float64).reshape(-1)
    steps = np.asarray(steps).reshape(-1)
    if not np.all(step_sizes > 0):
        raise ValueError(f"GD step sizes {step_sizes.tolist()} must all be > 0")
    if steps.size and (not np.issubdtype(steps.dtype, np.integer) or steps.min() < 1):
        raise ValueError(f"GD step counts {steps.tolist()} must be integers >= 1 (k = 1 is one step from w = 0)")
    spectra = _spectra(x, y)
    n = spectra.prefix_length.astype(np.float64)
    scale = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)  # 1/n; 0 for the empty prefix (weights are 0)
    # per eigendirection: one step multiplies the error by (1 − η s / n); the filter of k steps
    # is (η/n) Σ_{j<k} (1 − η s/n)^j, accumulated over j
    contraction = 1.0 - step_sizes[:, None, None, None] * spectra.eigenvalues[None] * scale[:, None]  # (E, B, K, D)
    power = np.ones_like(contraction)
    geometric = np.zeros_like(contraction)
    out = np.empty((len(step_sizes), len(steps), *spectra.weights.shape[:2]))
    wanted = {int(k): [i for i, s in enumerate(steps) if int(s) == int(k)] for k in steps}
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, int(steps.max(initial=0)) + 1):
            geometric += power
            power *= contraction
            if k in wanted:
                filters = geometric * (step_sizes[:, None, None, None] * scale[:, None])
                prediction = np.einsum("bki,ebki->ebk", spectra.weights, filters)
                for i in wanted[k]:
                    out[:, i] = prediction
    return out


def least_squares_predict(x: np.ndarray | PrefixSpectra, y: np.ndarray | None = None) -> np.ndarray:
    """Least-squares predictions for every prefix: ``t̂ = (XᵀX)⁺ XᵀY``, the minimum-norm minimiser.

    Where the prefix has at least ``D`` pairs (:func:`least_squares_defined`) ``XᵀX`` is
    invertible (almost surely) and this is ordinary least squares. On shorter prefixes
    the minimiser is not unique; the minimum-norm one is returned, which is the limit
    of ridge_λ as ``λ → 0`` and of GD-k from ``w = 0`` as ``k → ∞`` (for a convergent
    ``η``). Eigenvalues below :data:`LEAST_SQUARES_RTOL` of a prefix's largest count
    as its null space. The empty prefix predicts 0.

    Args:
        x: inputs ``(B, K, D)``, or their :class:`PrefixSpectra` (then ``y`` is ``None``).
        y: targets ``(B, K)``.
    Returns:
        ``(B, K)`` float64.
    """
    spectra = _spectra(x, y)
    s = spectra.eigenvalues
    kept = s > LEAST_SQUARES_RTOL * s.max(axis=-1, keepdims=True)
    inverse = np.divide(1.0, s, out=np.zeros_like(s), where=kept)
    return np.einsum("bki,bki->bk", spectra.weights, inverse)


def least_squares_defined(K: int, D: int) -> np.ndarray:
    """``(K,)`` bool: whether the prefix of position ``k`` (``k − 1`` pairs) has at least ``D`` pairs."""
    return np.arange(K) >= D
