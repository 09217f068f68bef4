"""The family fit against plain loops, planted members and evaluate's own distances."""

import math

import numpy as np
import pytest
import xarray as xr

from transient_ridge.baselines import build_baselines_dataset
from transient_ridge.config import FamiliesConfig
from transient_ridge.evaluate import build_outputs_dataset
from transient_ridge.families import (
    FAMILIES,
    PROBES,
    FamilyGrid,
    build_family_fit,
    fit_probe_set,
    mean_squared_distances,
    member_predictions,
)
from transient_ridge.predictors import gd_predict, ridge_penalty_predict
from transient_ridge.store import open_dataset, write_dataset
from transient_ridge.tasks import build_tasks_dataset

GRID = FamilyGrid(penalties=(0.01, 0.1, 1.0, 10.0), step_sizes=(0.1, 0.3, 0.9), steps=(1, 2, 5))


@pytest.fixture
def probe():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20, 6, 3))
    y = x @ rng.standard_normal(3) + 0.3 * rng.standard_normal((20, 6))
    return x, y


def distance_loop(predictions, members):
    out = np.zeros((len(predictions), len(members)))
    for t in range(len(predictions)):
        for j in range(len(members)):
            out[t, j] = np.mean((np.asarray(predictions[t], float) - members[j]) ** 2)
    return out


def test_distances_match_a_plain_loop(probe):
    x, y = probe
    rng = np.random.default_rng(1)
    members = ridge_penalty_predict(x, y, GRID.penalties)
    predictions = (members[1] + 0.2 * rng.standard_normal((5, *y.shape))).astype(np.float32)
    reference = ridge_penalty_predict(x, y, [0.5])[0]
    np.testing.assert_allclose(
        mean_squared_distances(predictions, members, reference), distance_loop(predictions, members), rtol=1e-10
    )


def test_a_member_that_overflowed_is_infinitely_far_and_a_nan_checkpoint_is_nan(probe):
    x, y = probe
    members = ridge_penalty_predict(x, y, GRID.penalties)
    members[2, 3, 4] = np.inf
    predictions = np.stack([members[0], np.full(y.shape, np.nan)])
    out = mean_squared_distances(predictions, members, members[0])
    assert np.isinf(out[0, 2]) and np.isfinite(out[0, [0, 1, 3]]).all()
    assert np.isnan(out[1]).all()
    members[3] = 1e200  # finite, but its squared norm overflows
    assert np.isinf(mean_squared_distances(predictions, members, members[0])[0, 3])


@pytest.mark.parametrize("index", [0, 2, 3])
def test_a_planted_ridge_member_is_found_at_distance_zero(probe, index):
    x, y = probe
    planted = ridge_penalty_predict(x, y, [GRID.penalties[index]])
    fit = fit_probe_set(planted, planted[0] * 0.9, planted[0] * 0, member_predictions(x, y, GRID), GRID)
    assert fit["fit_ridge_penalty"][0] == GRID.penalties[index]
    assert fit["family_dist"][0, FAMILIES.index("ridge_lambda")] < 1e-14


@pytest.mark.parametrize(("i", "j"), [(0, 0), (1, 2), (2, 1)])
def test_a_planted_gd_member_is_found_at_distance_zero(probe, i, j):
    x, y = probe
    planted = gd_predict(x, y, [GRID.step_sizes[i]], [GRID.steps[j]])[0]
    fit = fit_probe_set(planted, planted[0] * 0.9, planted[0] * 0, member_predictions(x, y, GRID), GRID)
    assert (fit["fit_gd_step_size"][0], fit["fit_gd_steps"][0]) == (GRID.step_sizes[i], GRID.steps[j])
    assert fit["family_dist"][0, FAMILIES.index("gd_k")] < 1e-14
    assert fit["dist_gd_k"].shape == (1, 3, 3)
    np.testing.assert_allclose(fit["dist_gd_k"].min(axis=(1, 2)), fit["family_dist"][:, FAMILIES.index("gd_k")])


def test_the_nearest_member_is_the_smallest_distance_of_a_loop(probe):
    x, y = probe
    rng = np.random.default_rng(3)
    members = member_predictions(x, y, GRID)
    predictions = 0.5 * members.ridge_lambda[1] + 0.5 * members.gd_k[1, 1] + 0.05 * rng.standard_normal((4, *y.shape))
    ridge, dmmse = ridge_penalty_predict(x, y, [0.3])[0], rng.standard_normal(y.shape)
    fit = fit_probe_set(predictions, ridge, dmmse, members, GRID)
    lam = distance_loop(predictions, members.ridge_lambda)
    gd = distance_loop(predictions, members.gd_k.reshape(9, *y.shape)).reshape(4, 3, 3)
    np.testing.assert_allclose(fit["dist_ridge_lambda"], lam, rtol=1e-10)
    np.testing.assert_allclose(fit["dist_gd_k"], gd, rtol=1e-10)
    np.testing.assert_array_equal(fit["fit_ridge_penalty"], np.asarray(GRID.penalties)[lam.argmin(axis=1)])
    flat = gd.reshape(4, -1).argmin(axis=1)
    np.testing.assert_array_equal(fit["fit_gd_step_size"], np.asarray(GRID.step_sizes)[flat // 3])
    np.testing.assert_array_equal(fit["fit_gd_steps"], np.asarray(GRID.steps)[flat % 3])
    expected = [distance_loop(predictions, [p])[:, 0] for p in (ridge, dmmse, members.least_squares)]
    for name, values in zip(("ridge", "dmmse", "least_squares"), expected):
        np.testing.assert_allclose(fit["family_dist"][:, FAMILIES.index(name)], values, rtol=1e-12)


def test_the_grid_from_config_contains_the_noise_variance():
    families = FamiliesConfig(
        ridge_penalty={"min": 0.01, "max": 100.0, "num": 5}, gd_step_size={"min": 0.1, "max": 1.0, "num": 2},
        gd_steps=[4, 1, 4],
    )
    grid = FamilyGrid.from_config(families, 0.05)
    assert grid.penalties == (0.01, 0.05, 0.1, 1.0, 10.0, 100.0)
    assert grid.step_sizes == (0.1, 1.0) and grid.steps == (1, 4)


# --------------------------------------------------------------------------- in outputs.zarr


@pytest.fixture
def run(tiny_cfg):
    tasks = build_tasks_dataset(tiny_cfg)
    baselines = build_baselines_dataset(tasks, chunk_size=2)
    grid = FamilyGrid.from_config(tiny_cfg.families, tiny_cfg.data.noise_variance)
    rng = np.random.default_rng(0)
    M = 4.0
    ridge_id = baselines["ridge_id"].sel(M=M).values
    steps = np.array([0, 5, 10])
    predictions = xr.Dataset(
        {
            "pred_root": (("step", "sequence", "token"), rng.standard_normal((3, 16, 4)).astype(np.float32)),
            "pred_ood": (("step", "ood_sequence", "token"), rng.standard_normal((3, 32, 4)).astype(np.float32)),
            "pred_id": (("step", "id_sequence", "token"), (ridge_id + 0.1 * rng.standard_normal((3, 32, 4))).astype(np.float32)),
        },
        coords={"step": steps, "token": [1, 2, 3, 4], "sequence": np.arange(16)},
        attrs={"M": M},
    )
    return predictions, tasks, baselines, grid


def test_outputs_hold_the_fit_beside_evaluates_distances(run, tmp_path):
    predictions, tasks, baselines, grid = run
    out = build_outputs_dataset(predictions, tasks, baselines, grid)
    assert out["family_dist"].dims == ("step", "probe", "family")
    assert out["dist_gd_k"].dims == ("step", "probe", "gd_step_size", "gd_steps")
    assert list(out["probe"].values) == list(PROBES) and list(out["family"].values) == list(FAMILIES)
    assert out["ridge_penalty"].values.tolist() == list(grid.penalties)
    id_dist = out["family_dist"].sel(probe="id")
    np.testing.assert_array_equal(id_dist.sel(family="ridge"), out["dist_ridge"])
    np.testing.assert_array_equal(id_dist.sel(family="dmmse"), out["dist_dmmse"])
    # the λ grid holds σ², so the nearest ridge_λ is never farther than ridge itself
    assert (out["family_dist"].sel(family="ridge_lambda") <= out["family_dist"].sel(family="ridge") + 1e-12).all()
    ood = predictions["pred_ood"].values.astype(float)
    expected = ((ood - baselines["dmmse_ood"].sel(M=4.0).values) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(out["family_dist"].sel(probe="ood", family="dmmse"), expected, rtol=1e-6)
    assert out["least_squares_defined"].values.tolist() == [False, False, True, True]
    write_dataset(out, tmp_path / "outputs.zarr")
    back = open_dataset(tmp_path / "outputs.zarr")
    xr.testing.assert_identical(back["family_dist"].load(), out["family_dist"])
    assert math.isclose(float(back["fit_ridge_penalty"].sel(probe="id").isel(step=0)), float(out["fit_ridge_penalty"].sel(probe="id").isel(step=0)))


def test_without_a_grid_the_outputs_keep_their_old_layout(run):
    predictions, tasks, baselines, _ = run
    out = build_outputs_dataset(predictions, tasks, baselines)
    assert "family_dist" not in out and "probe" not in out.dims


def test_build_family_fit_uses_the_runs_own_probe_set(run):
    predictions, tasks, baselines, grid = run
    fit = build_family_fit(predictions, tasks, baselines, grid)
    x, y = tasks["id_x"].sel(M=4.0).values, tasks["id_y"].sel(M=4.0).values
    members = member_predictions(x, y, grid)
    expected = distance_loop(predictions["pred_id"].values, members.ridge_lambda)
    np.testing.assert_allclose(fit["dist_ridge_lambda"].sel(probe="id"), expected, rtol=1e-9)
