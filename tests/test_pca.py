"""Joint trajectory PCA: invariants and agreement with numpy's SVD."""

import math

import numpy as np
import pytest
import xarray as xr

from transient_ridge.pca import TrajectoryPCA, build_pca_dataset


def _rows(seed=0, n=40, f=24):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)) @ rng.standard_normal((3, f)) * [5, 2, 1][0] + 0.1 * rng.standard_normal((n, f))


def test_matches_numpy_svd_up_to_sign():
    rows = _rows()
    pca = TrajectoryPCA(3, svd_solver="full").fit(rows)
    centred = rows - rows.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    for i in range(3):
        assert abs(abs(pca.components_[i] @ vt[i]) - 1) < 1e-8
    np.testing.assert_allclose(pca.explained_variance_ratio_, (s**2 / (s**2).sum())[:3], rtol=1e-8)


def test_ratios_sum_to_at_most_one_and_signs_are_deterministic():
    rows = _rows(1)
    a = TrajectoryPCA(3, svd_solver="full").fit(rows)
    b = TrajectoryPCA(3, svd_solver="randomized", random_state=3).fit(rows)
    assert a.explained_variance_ratio_.sum() <= 1 + 1e-12
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-6)


def test_projection_of_fitted_row_is_its_trajectory_and_mean_is_used():
    rows = _rows(2)
    pca = TrajectoryPCA(2).fit(rows)
    manual = (rows[5] - rows.mean(axis=0)) @ pca.components_.T
    np.testing.assert_allclose(pca.transform(rows[5:6])[0], manual, atol=1e-10)
    np.testing.assert_allclose(pca.transform(rows.mean(axis=0, keepdims=True)), 0, atol=1e-10)


def test_invalid_components_message():
    with pytest.raises(ValueError, match=r"n_components=9 must be between 1 and min\(n_samples, n_features\)=5"):
        TrajectoryPCA(9).fit(np.zeros((5, 7)))


def _outputs_and_baselines():
    rng = np.random.default_rng(0)
    steps, B, K = np.array([0, 1, 5, 10]), 6, 3
    outputs = {
        M: xr.Dataset(
            {"pred_root": (("step", "sequence", "token"), rng.standard_normal((4, B, K)))},
            coords={"step": steps, "token": np.arange(1, K + 1), "sequence": np.arange(B)},
            attrs={"M": M},
        )
        for M in (1.0, 8.0, math.inf)
    }
    baselines = xr.Dataset(
        {
            "ridge_root": (("sequence", "token"), rng.standard_normal((B, K))),
            "dmmse_root": (("M", "sequence", "token"), rng.standard_normal((3, B, K))),
        },
        coords={"M": [1.0, 8.0, math.inf], "token": np.arange(1, K + 1)},
    )
    return outputs, baselines


def test_pca_dataset_layout_and_projection():
    outputs, baselines = _outputs_and_baselines()
    ds = build_pca_dataset(outputs, baselines, n_components=3)
    assert ds["trajectory"].dims == ("M", "step", "pc") and ds["trajectory"].shape == (3, 4, 3)
    assert ds["predictor"].values.tolist() == ["ridge", "dmmse_M1", "dmmse_M8"]
    np.testing.assert_allclose(ds["token_loadings"].sum("token"), 1.0, rtol=1e-5)
    row = outputs[8.0]["pred_root"].isel(step=2).values.reshape(-1)
    expected = (row - ds["mean"].values) @ ds["components"].values.T
    np.testing.assert_allclose(ds["trajectory"].sel(M=8.0).isel(step=2), expected, atol=1e-5)
    ridge = baselines["ridge_root"].values.reshape(-1)
    np.testing.assert_allclose(
        ds["predictor_projection"].sel(predictor="ridge"), (ridge - ds["mean"].values) @ ds["components"].values.T,
        rtol=1e-10,
    )
    assert ds["feature_token"].values[:3].tolist() == [1, 2, 3] and ds["feature_sequence"].values[3] == 1


def test_runs_with_other_steps_are_rejected():
    outputs, baselines = _outputs_and_baselines()
    outputs[1.0] = outputs[1.0].isel(step=[0, 1, 2])
    with pytest.raises(ValueError, match="other checkpoint steps"):
        build_pca_dataset(outputs, baselines, n_components=2)


def test_seeds_are_fitted_jointly_and_keep_their_own_trajectories():
    from transient_ridge.seeds import runs_by_M

    rng = np.random.default_rng(3)
    steps, B, K = np.array([0, 1, 5, 10]), 6, 3
    runs = [
        xr.Dataset(
            {"pred_root": (("step", "sequence", "token"), rng.standard_normal((4, B, K)))},
            coords={"step": steps, "token": np.arange(1, K + 1), "sequence": np.arange(B)},
            attrs={"M": M, "seed": seed, "t_crit": 5},
        )
        for M in (1.0, math.inf)
        for seed in (7, 2)
    ]
    _, baselines = _outputs_and_baselines()
    baselines = baselines.sel(M=[1.0, math.inf])
    ds = build_pca_dataset(runs_by_M(runs, seed_axis=True), baselines, n_components=3)
    assert ds["trajectory"].dims == ("M", "seed", "step", "pc") and ds["seed"].values.tolist() == [2, 7]
    # one fit over all 16 rows: the same as fitting the stacked rows directly
    rows = np.stack([run["pred_root"].values.reshape(4, -1) for run in runs]).reshape(16, -1)
    reference = TrajectoryPCA(3).fit(rows)
    np.testing.assert_allclose(ds["components"].values, reference.components_, atol=1e-6)
    seed7_inf = runs[2]["pred_root"].values.reshape(4, -1)
    np.testing.assert_allclose(ds["trajectory"].sel(M=math.inf, seed=7), reference.transform(seed7_inf), atol=1e-5)
    # one seed's view has the one-seed layout
    from transient_ridge.seeds import select_seed

    assert select_seed(ds, 2)["trajectory"].dims == ("M", "step", "pc")


def test_the_ridge_path_is_projected_not_fitted(tiny_cfg):
    """ridge_λ over its grid is projected with the runs' centring; at λ = σ² it sits on ridge."""
    from transient_ridge.baselines import build_baselines_dataset
    from transient_ridge.tasks import build_tasks_dataset

    tasks = build_tasks_dataset(tiny_cfg)
    sigma2 = tiny_cfg.data.noise_variance
    penalties = tiny_cfg.families.penalties(sigma2)
    baselines = build_baselines_dataset(tasks, chunk_size=2, ridge_penalties=penalties)
    rng = np.random.default_rng(1)
    ridge = baselines["ridge_root"].values
    outputs = {
        M: xr.Dataset(
            {"pred_root": (("step", "sequence", "token"), ridge + rng.standard_normal((4, *ridge.shape)))},
            coords={"step": [0, 1, 2, 3], "token": baselines["token"].values, "sequence": baselines["sequence"].values},
            attrs={"M": M},
        )
        for M in (1.0, 4.0, math.inf)
    }
    ds = build_pca_dataset(outputs, baselines, n_components=2)
    without = build_pca_dataset(outputs, baselines.drop_vars("ridge_lambda_root"), n_components=2)
    xr.testing.assert_allclose(ds["components"], without["components"])  # the path takes no part in the fit
    assert ds["ridge_path_projection"].dims == ("ridge_penalty", "pc")
    assert ds["ridge_penalty"].values.tolist() == list(penalties)
    np.testing.assert_allclose(
        ds["ridge_path_projection"].sel(ridge_penalty=sigma2), ds["predictor_projection"].sel(predictor="ridge"),
        rtol=1e-10, atol=1e-12,
    )
    path = baselines["ridge_lambda_root"].values.reshape(len(penalties), -1)
    np.testing.assert_allclose(
        ds["ridge_path_projection"], (path - ds["mean"].values) @ ds["components"].values.T, rtol=1e-10, atol=1e-12
    )
    assert ds.attrs["noise_variance"] == sigma2
