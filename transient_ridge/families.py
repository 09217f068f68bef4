"""Which in-context predictor a checkpoint is nearest: predictor families fitted over training.

For every checkpoint of a run and each of two probe sets (``ood``: the ``q_∞`` set;
``id``: the run's own ``q_M`` set) this finds the member of each family nearest the
model's predictions, by exhaustive search over a bounded grid (config section
``families``, :class:`transient_ridge.config.FamiliesConfig`):

- ``ridge_lambda``: ridge with penalty λ (:func:`~transient_ridge.predictors.ridge_penalty_predict`),
  over the λ grid, which always contains σ² (so it is never farther than ridge itself);
- ``gd_k``: ``k`` steps of in-context GD from ``w = 0`` with step ``η`` on ``‖Y − Xw‖² / 2n``
  (:func:`~transient_ridge.predictors.gd_predict`), over the ``(η, k)`` grid;
- ``least_squares``: the minimum-norm least-squares predictor (no parameter);

beside the two reference predictors ``ridge`` (λ = σ²) and ``dmmse`` (dMMSE_M). The
distance is the one of ``dist_ridge`` (:mod:`transient_ridge.evaluate`): the mean over
sequences and tokens of the squared prediction difference. The members' predictions
are cheap (a few spectral filters per probe sequence, :mod:`transient_ridge.predictors`)
and are recomputed per run from the probe inputs rather than stored.

    fit = build_family_fit(predictions, tasks, baselines, FamilyGrid.from_config(cfg.families, sigma2))
    fit["family_dist"].sel(probe="ood", family="ridge_lambda")     # (step)

The resolution of a fitted λ or η is the grid's ratio between neighbours (about
1.33 for 8 values a decade); no refinement between grid points is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from .config import FamiliesConfig
from .predictors import (
    gd_predict,
    least_squares_defined,
    least_squares_predict,
    per_token_mse,
    prefix_spectra,
    ridge_penalty_predict,
)

__all__ = [
    "FAMILIES",
    "PROBES",
    "FamilyGrid",
    "MemberPredictions",
    "member_predictions",
    "mean_squared_distances",
    "fit_probe_set",
    "build_family_fit",
]

PROBES = ("ood", "id")  # the q_∞ probe set and the run's own q_M probe set
# ridge and dmmse: one-member references; the rest: the best member of each family
FAMILIES = ("ridge", "dmmse", "ridge_lambda", "gd_k", "least_squares")
_STEP_CHUNK = 256  # checkpoints per matrix product (bounds memory at paper scale)


@dataclass(frozen=True)
class FamilyGrid:
    """The members searched: penalties ``λ`` ``(L,)``, GD step sizes ``η`` ``(E,)``, GD step counts ``k`` ``(S,)``."""

    penalties: tuple[float, ...]
    step_sizes: tuple[float, ...]
    steps: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.penalties or not self.step_sizes or not self.steps:
            raise ValueError(f"every family needs at least one member; got {self}")

    @classmethod
    def from_config(cls, families: FamiliesConfig, noise_variance: float) -> FamilyGrid:
        """The grid of config section ``families`` with σ² added to the λ grid."""
        return cls(families.penalties(noise_variance), families.gd_step_size.values, families.gd_steps)


@dataclass(frozen=True)
class MemberPredictions:
    """Every member's predictions on one probe set of ``N`` sequences of ``K`` tokens (float64).

    Attributes:
        ridge_lambda: ``(L, N, K)``, one per penalty.
        gd_k: ``(E, S, N, K)``, one per step size and step count.
        least_squares: ``(N, K)``.
    """

    ridge_lambda: np.ndarray
    gd_k: np.ndarray
    least_squares: np.ndarray


def member_predictions(x: np.ndarray, y: np.ndarray, grid: FamilyGrid) -> MemberPredictions:
    """:class:`MemberPredictions` of a probe set: inputs ``(N, K, D)``, targets ``(N, K)``."""
    spectra = prefix_spectra(x, y)
    return MemberPredictions(
        ridge_lambda=ridge_penalty_predict(spectra, None, grid.penalties),
        gd_k=gd_predict(spectra, None, grid.step_sizes, grid.steps),
        least_squares=least_squares_predict(spectra),
    )


def mean_squared_distances(predictions: np.ndarray, members: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean over sequences and tokens of ``(prediction − member)²`` for every checkpoint and member.

    Computed as ``‖p‖² − 2 p·m + ‖m‖²`` per pair with one matrix product, after subtracting
    ``reference`` (a predictor near both, such as ridge) from each, so that the cancellation
    is relative to the distances to the reference rather than to the predictions' size.
    A member with a non-finite prediction is at distance ``inf``; a checkpoint with a
    non-finite prediction at distance NaN from every member.

    Args:
        predictions: ``(T, N, K)`` (any float dtype; computed in float64).
        members: ``(J, N, K)``.
        reference: ``(N, K)``.
    Returns:
        ``(T, J)`` float64, at least 0.
    """
    reference = np.asarray(reference, dtype=np.float64).reshape(1, -1)
    members = np.asarray(members, dtype=np.float64).reshape(len(members), -1) - reference
    features = members.shape[1]
    out = np.empty((len(predictions), len(members)))
    rows_finite = np.empty(len(predictions), dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged GD member may overflow: it is then at inf
        finite = np.isfinite(members).all(axis=1)
        members = np.where(finite[:, None], members, 0.0)
        member_norms = np.einsum("jf,jf->j", members, members)
        for start in range(0, len(predictions), _STEP_CHUNK):
            block = np.asarray(predictions[start : start + _STEP_CHUNK], dtype=np.float64)
            block = block.reshape(len(block), -1) - reference
            norms = np.einsum("tf,tf->t", block, block)
            rows_finite[start : start + len(block)] = np.isfinite(norms)
            out[start : start + len(block)] = norms[:, None] - 2.0 * (block @ members.T) + member_norms[None, :]
    out = np.maximum(out, 0.0) / features  # NaN stays NaN
    out[:, ~finite] = np.inf
    out[rows_finite[:, None] & ~np.isfinite(out)] = np.inf  # overflowed against a finite checkpoint
    out[~rows_finite] = np.nan
    return out


def _argmin(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: index of the smallest finite distance (-1 where none) and that distance (NaN where none)."""
    safe = np.where(np.isnan(distances), np.inf, distances)
    index = np.argmin(safe, axis=1)
    best = safe[np.arange(len(safe)), index]
    found = np.isfinite(best)
    return np.where(found, index, -1), np.where(found, best, np.nan)


def fit_probe_set(
    predictions: np.ndarray,
    ridge: np.ndarray,
    dmmse: np.ndarray,
    members: MemberPredictions,
    grid: FamilyGrid,
) -> dict[str, np.ndarray]:
    """Distances of every checkpoint to every member and to the references, and the best member per family.

    Args:
        predictions: the model's ``(T, N, K)`` predictions on one probe set.
        ridge, dmmse: ``(N, K)`` predictions of ridge (λ = σ²) and dMMSE_M on it.
        members: the families' predictions on it (:func:`member_predictions`).
        grid: the grid ``members`` was computed on.
    Returns:
        ``dist_ridge_lambda (T, L)``, ``dist_gd_k (T, E, S)``, ``family_dist (T, len(FAMILIES))``
        (in :data:`FAMILIES` order), ``fit_ridge_penalty (T,)``, ``fit_gd_step_size (T,)``,
        ``fit_gd_steps (T,)`` (float: NaN where no member is at a finite distance).
    """
    T = len(predictions)
    E, S = len(grid.step_sizes), len(grid.steps)
    dist_lambda = mean_squared_distances(predictions, members.ridge_lambda, ridge)
    dist_gd = mean_squared_distances(predictions, members.gd_k.reshape(E * S, *members.gd_k.shape[2:]), ridge)
    best_lambda, lambda_dist = _argmin(dist_lambda)
    best_gd, gd_dist = _argmin(dist_gd)

    def direct(other: np.ndarray) -> np.ndarray:  # the computation of evaluate's dist_ridge
        return per_token_mse(predictions, other).mean(axis=-1)

    family_dist = np.stack(
        [direct(ridge), direct(dmmse), lambda_dist, gd_dist, direct(members.least_squares)], axis=1
    )
    penalties = np.asarray(grid.penalties, dtype=np.float64)
    step_sizes = np.asarray(grid.step_sizes, dtype=np.float64)
    steps = np.asarray(grid.steps, dtype=np.float64)
    found_gd = best_gd >= 0
    return {
        "dist_ridge_lambda": dist_lambda,
        "dist_gd_k": dist_gd.reshape(T, E, S),
        "family_dist": family_dist,
        "fit_ridge_penalty": np.where(best_lambda >= 0, penalties[np.maximum(best_lambda, 0)], np.nan),
        "fit_gd_step_size": np.where(found_gd, step_sizes[np.maximum(best_gd, 0) // S], np.nan),
        "fit_gd_steps": np.where(found_gd, steps[np.maximum(best_gd, 0) % S], np.nan),
    }


def _probe_arrays(
    probe: str, M: float, tasks: xr.Dataset, baselines: xr.Dataset, predictions: xr.Dataset
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(model predictions, x, y, ridge, dMMSE_M)`` of one probe set for the run with this M."""
    if probe == "ood":
        return (
            predictions["pred_ood"].transpose("step", "ood_sequence", "token").values,
            tasks["ood_x"].values,
            tasks["ood_y"].values,
            baselines["ridge_ood"].values,
            baselines["dmmse_ood"].sel(M=M).values,
        )
    return (
        predictions["pred_id"].transpose("step", "id_sequence", "token").values,
        tasks["id_x"].sel(M=M).values,
        tasks["id_y"].sel(M=M).values,
        baselines["ridge_id"].sel(M=M).values,
        baselines["dmmse_id"].sel(M=M).values,
    )


def build_family_fit(
    predictions: xr.Dataset, tasks: xr.Dataset, baselines: xr.Dataset, grid: FamilyGrid
) -> xr.Dataset:
    """The fitted-family variables of a run's ``outputs.zarr`` (docs/stores.md, "Fitted predictor families").

    Args:
        predictions: the run's ``predictions.zarr`` (``pred_ood``, ``pred_id`` over ``step``; attribute ``M``).
        tasks: ``tasks.zarr`` (probe inputs and targets).
        baselines: ``baselines.zarr`` (ridge and dMMSE_M on the probe sets).
        grid: the members to search.
    Returns:
        A dataset over ``step``, ``probe`` (:data:`PROBES`), ``family`` (:data:`FAMILIES`),
        ``ridge_penalty``, ``gd_step_size``, ``gd_steps``: ``family_dist(step, probe, family)``,
        ``fit_ridge_penalty``, ``fit_gd_step_size``, ``fit_gd_steps`` ``(step, probe)``,
        ``dist_ridge_lambda(step, probe, ridge_penalty)``,
        ``dist_gd_k(step, probe, gd_step_size, gd_steps)``, and ``least_squares_defined(token)``.
    """
    M = float(predictions.attrs["M"])
    fits = []
    for probe in PROBES:
        model, x, y, ridge, dmmse = _probe_arrays(probe, M, tasks, baselines, predictions)
        fits.append(fit_probe_set(model, ridge, dmmse, member_predictions(x, y, grid), grid))
    stacked = {name: np.stack([fit[name] for fit in fits], axis=1) for name in fits[0]}  # probe after step
    K, D = tasks["ood_x"].shape[-2:]
    dataset = xr.Dataset(
        {
            "family_dist": (("step", "probe", "family"), stacked["family_dist"]),
            "fit_ridge_penalty": (("step", "probe"), stacked["fit_ridge_penalty"]),
            "fit_gd_step_size": (("step", "probe"), stacked["fit_gd_step_size"]),
            "fit_gd_steps": (("step", "probe"), stacked["fit_gd_steps"]),
            "dist_ridge_lambda": (("step", "probe", "ridge_penalty"), stacked["dist_ridge_lambda"]),
            "dist_gd_k": (("step", "probe", "gd_step_size", "gd_steps"), stacked["dist_gd_k"]),
            "least_squares_defined": ("token", least_squares_defined(int(K), int(D))),
        },
        coords={
            "step": predictions["step"].values,
            # object dtype: zarr 3 stores variable-length strings under a specified data type
            "probe": np.array(PROBES, dtype=object),
            "family": np.array(FAMILIES, dtype=object),
            "ridge_penalty": np.asarray(grid.penalties, dtype=np.float64),
            "gd_step_size": np.asarray(grid.step_sizes, dtype=np.float64),
            "gd_steps": np.asarray(grid.steps, dtype=np.int64),
            "token": tasks["token"].values,
        },
    )
    descriptions = {
        "family_dist": "mean squared prediction difference to ridge, dMMSE_M, and the nearest member of ridge_lambda, "
        "GD-k and least squares, on each probe set",
        "fit_ridge_penalty": "lambda of the nearest ridge_lambda member",
        "fit_gd_step_size": "eta of the nearest GD-k member (loss |Y - Xw|^2 / 2n)",
        "fit_gd_steps": "k of the nearest GD-k member",
        "dist_ridge_lambda": "distance to every ridge_lambda member",
        "dist_gd_k": "distance to every GD-k member",
        "least_squares_defined": "the prefix of the token has at least D pairs (else least squares is the "
        "minimum-norm solution)",
    }
    for name, text in descriptions.items():
        dataset[name].attrs["description"] = text
    dataset["fit_ridge_penalty"].attrs["noise_variance"] = float(tasks.attrs["noise_variance"])  # ridge's λ
    dataset["probe"].attrs["description"] = "ood: the q_inf probe set; id: the run's own q_M probe set"
    return dataset

