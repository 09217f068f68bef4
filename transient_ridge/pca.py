"""Joint trajectory PCA (Carroll et al. 2025, §4).

Each checkpoint of each run becomes the row vector of its predictions on the
fixed root batch (``B·K`` numbers). All runs and checkpoints are stacked,
centred and decomposed (with several train seeds, every seed's trajectory too:
one joint fit); the idealized predictors (ridge, dMMSE_M) are encoded the same
way and *projected* with the fitted centring, never fitted; so is the path of
ridge_λ over its penalty grid when the baselines hold it (``ridge_lambda_root``).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from sklearn.decomposition import PCA

from .config import format_task_count
from .seeds import SEED, seeds_of

__all__ = ["TrajectoryPCA", "stack_trajectories", "build_pca_dataset"]


class TrajectoryPCA:
    """PCA of a matrix of prediction vectors, with deterministic signs.

    Parameters follow scikit-learn: ``n_components``, ``svd_solver``
    (``"auto"`` uses randomized SVD for large matrices), ``random_state``.
    Fitted attributes: ``mean_`` ``(F,)``, ``components_`` ``(P, F)`` (unit rows),
    ``explained_variance_`` and ``explained_variance_ratio_`` ``(P,)``.
    Signs are fixed so that the largest-magnitude entry of each component is
    positive, so reruns and solvers agree.
    """

    def __init__(self, n_components: int = 4, *, svd_solver: str = "auto", random_state: int = 0) -> None:
        self.n_components = n_components
        self.svd_solver = svd_solver
        self.random_state = random_state

    def fit(self, rows: np.ndarray) -> TrajectoryPCA:
        """Fit on ``rows`` of shape ``(N, F)`` (N checkpoints × F = B·K features)."""
        rows = np.asarray(rows)
        limit = min(rows.shape)
        if not 1 <= self.n_components <= limit:
            raise ValueError(
                f"n_components={self.n_components} must be between 1 and min(n_samples, n_features)={limit}"
            )
        pca = PCA(n_components=self.n_components, svd_solver=self.svd_solver, random_state=self.random_state)
        pca.fit(rows)
        components = pca.components_.astype(np.float64)
        signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
        self.components_ = components * signs[:, None]
        self.mean_ = pca.mean_.astype(np.float64)
        self.explained_variance_ = pca.explained_variance_.astype(np.float64)
        self.explained_variance_ratio_ = pca.explained_variance_ratio_.astype(np.float64)
        return self

    def transform(self, rows: np.ndarray, *, chunk_rows: int = 4096) -> np.ndarray:
        """Project ``(N, F)`` rows with the fitted centring: ``(N, P)`` float64.

        Works through ``chunk_rows`` rows at a time in float64, so a large
        float32 matrix is never copied whole.
        """
        if not hasattr(self, "components_"):
            raise RuntimeError("TrajectoryPCA is not fitted yet; call fit first")
        rows = np.asarray(rows)
        out = np.empty((rows.shape[0], self.components_.shape[0]))
        for start in range(0, rows.shape[0], chunk_rows):
            block = rows[start : start + chunk_rows].astype(np.float64) - self.mean_
            out[start : start + chunk_rows] = block @ self.components_.T
        return out


def stack_trajectories(outputs: dict[float, xr.Dataset]) -> tuple[np.ndarray, list[float], np.ndarray]:
    """Stack ``pred_root`` of every run into rows.

    ``pred_root`` is ``(step, sequence, token)``, or ``(seed, step, sequence, token)``
    for runs stacked over seeds (:func:`transient_ridge.seeds.runs_by_M`).

    Returns:
        rows ``(len(M)·[seeds·]S, B·K)`` float32 (run-major, then seed, then step), the
        sorted M values, the shared steps ``(S,)``.
    """
    M_values = sorted(outputs)
    steps = outputs[M_values[0]]["step"].values
    for M in M_values:
        if not np.array_equal(outputs[M]["step"].values, steps):
            raise ValueError(f"run M={format_task_count(M)} has other checkpoint steps than M={format_task_count(M_values[0])}")
    n_features = outputs[M_values[0]]["pred_root"].sizes["sequence"] * outputs[M_values[0]]["pred_root"].sizes["token"]
    rows = np.concatenate(
        [_ordered_predictions(outputs[M]).values.reshape(-1, n_features).astype(np.float32) for M in M_values]
    )
    return rows, M_values, steps


def _ordered_predictions(run: xr.Dataset) -> xr.DataArray:
    """``pred_root`` as ``([seed,] step, sequence, token)``."""
    dims = ("seed", "step", "sequence", "token") if SEED in run["pred_root"].dims else ("step", "sequence", "token")
    return run["pred_root"].transpose(*dims)


def build_pca_dataset(
    outputs: dict[float, xr.Dataset], baselines: xr.Dataset, *, n_components: int, random_state: int = 0
) -> xr.Dataset:
    """``pca.zarr`` content (layout in docs/stores.md) from every run's outputs and the baselines.

    Runs stacked over seeds (a ``seed`` dim on ``pred_root``) are fitted jointly,
    every seed of every M, and ``trajectory`` is then ``(M, seed, step, pc)``;
    otherwise ``(M, step, pc)``. Where the baselines hold ``ridge_lambda_root``, its
    projection is ``ridge_path_projection(ridge_penalty, pc)``.
    """
    seeds = seeds_of(outputs)
    rows, M_values, steps = stack_trajectories(outputs)
    first = outputs[M_values[0]]["pred_root"]
    n_sequences, n_tokens = first.sizes["sequence"], first.sizes["token"]
    pca = TrajectoryPCA(n_components, random_state=random_state).fit(rows)
    projected = pca.transform(rows)
    if seeds is None:
        trajectory = (("M", "step", "pc"), projected.reshape(len(M_values), len(steps), n_components))
    else:
        trajectory = (("M", SEED, "step", "pc"), projected.reshape(len(M_values), len(seeds), len(steps), n_components))

    predictor_labels = ["ridge"]
    predictor_rows = [baselines["ridge_root"].values.reshape(-1)]
    for M in baselines["M"].values:
        if math.isfinite(M):
            predictor_labels.append(f"dmmse_M{format_task_count(M)}")
            predictor_rows.append(baselines["dmmse_root"].sel(M=M).values.reshape(-1))
    projection = pca.transform(np.stack(predictor_rows))

    loadings = (pca.components_**2).reshape(n_components, n_sequences, n_tokens).sum(axis=1)
    feature = np.arange(n_sequences * n_tokens)
    pcs = np.arange(1, n_components + 1)
    coords = {
        "M": np.array(M_values, dtype=np.float64),
        "step": steps,
        "pc": pcs,
        "token": first["token"].values,
        "feature": feature,
        "feature_sequence": ("feature", np.repeat(np.arange(n_sequences), n_tokens)),
        "feature_token": ("feature", np.tile(first["token"].values, n_sequences)),
        "predictor": np.array(predictor_labels, dtype=object),  # variable-length strings: a zarr 3 data type
    }
    if seeds is not None:
        coords[SEED] = np.array(seeds, dtype=np.int64)
    variables = {
        "trajectory": trajectory,
        "explained_variance_ratio": ("pc", pca.explained_variance_ratio_),
        "components": (("pc", "feature"), pca.components_),
        "token_loadings": (("pc", "token"), loadings),
        "mean": ("feature", pca.mean_),
        "predictor_projection": (("predictor", "pc"), projection),
    }
    if "ridge_lambda_root" in baselines:
        path = baselines["ridge_lambda_root"].transpose("ridge_penalty", "sequence", "token")
        variables["ridge_path_projection"] = (("ridge_penalty", "pc"), pca.transform(path.values.reshape(len(path), -1)))
        coords["ridge_penalty"] = path["ridge_penalty"].values
    dataset = xr.Dataset(
        variables,
        coords=coords,
        attrs={key: value for key, value in baselines.attrs.items() if key in ("experiment", "config", "code_version")},
    )
    if "ridge_path_projection" in dataset:
        dataset["ridge_path_projection"].attrs["description"] = "ridge_lambda on the root set over its penalty grid, projected"
        dataset.attrs["noise_variance"] = float(baselines.attrs["noise_variance"])
    return dataset
