"""Per-checkpoint metrics against direct recomputation; t_crit; baselines and tasks stores."""

import math

import numpy as np
import pytest
import xarray as xr

from transient_ridge.baselines import build_baselines_dataset
from transient_ridge.evaluate import build_outputs_dataset, critical_step
from transient_ridge.predictors import dmmse_predict, ridge_predict
from transient_ridge.store import open_dataset, write_dataset
from transient_ridge.tasks import build_tasks_dataset


@pytest.fixture
def stores(tiny_cfg):
    tasks = build_tasks_dataset(tiny_cfg)
    return tasks, build_baselines_dataset(tasks, chunk_size=2)


def test_tasks_store_layout(stores):
    tasks, _ = stores
    assert tasks["id_x"].dims == ("M", "id_sequence", "token", "dim")
    assert tasks["root_x"].dims == ("sequence", "token", "dim")
    assert tasks.attrs["D"] == 2 and tasks.attrs["K"] == 4 and tasks.attrs["noise_variance"] == 0.1
    assert tasks["token"].values.tolist() == [1, 2, 3, 4]
    assert math.isinf(tasks["M"].values[-1])


def test_baselines_match_direct_predictors(stores):
    tasks, baselines = stores
    sigma2 = 0.1
    x, y = tasks["id_x"].sel(M=4.0).values, tasks["id_y"].sel(M=4.0).values
    np.testing.assert_allclose(baselines["ridge_id"].sel(M=4.0), ridge_predict(x, y, sigma2))
    np.testing.assert_allclose(
        baselines["dmmse_id"].sel(M=4.0), dmmse_predict(x, y, tasks["tasks"].values[:4], sigma2)
    )
    # dMMSE at M = inf is ridge
    np.testing.assert_allclose(baselines["dmmse_ood"].sel(M=math.inf), baselines["ridge_ood"])
    loss = np.mean((baselines["ridge_ood"].values - tasks["ood_y"].values) ** 2, axis=0)
    np.testing.assert_allclose(baselines["loss_ridge_ood"], loss)


def test_outputs_match_direct_recomputation(stores):
    tasks, baselines = stores
    rng = np.random.default_rng(0)
    steps = np.array([0, 5, 10])
    M = 4.0
    pred_id = rng.standard_normal((3, 32, 4)).astype(np.float32)
    pred_ood = rng.standard_normal((3, 32, 4)).astype(np.float32)
    predictions = xr.Dataset(
        {
            "pred_root": (("step", "sequence", "token"), rng.standard_normal((3, 16, 4)).astype(np.float32)),
            "pred_ood": (("step", "ood_sequence", "token"), pred_ood),
            "pred_id": (("step", "id_sequence", "token"), pred_id),
        },
        coords={"step": steps, "token": [1, 2, 3, 4], "sequence": np.arange(16)},
        attrs={"M": M},
    )
    out = build_outputs_dataset(predictions, tasks, baselines)
    for s in range(3):
        for k in range(4):
            expected = np.mean([(pred_id[s, n, k] - baselines["ridge_id"].sel(M=M).values[n, k]) ** 2 for n in range(32)])
            assert out["dist_ridge_token"].values[s, k] == pytest.approx(expected, rel=1e-6)
            expected = np.mean([(pred_ood[s, n, k] - tasks["ood_y"].values[n, k]) ** 2 for n in range(32)])
            assert out["loss_ood_token"].values[s, k] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(out["loss_id"], out["loss_id_token"].mean("token"))
    dmmse = baselines["dmmse_id"].sel(M=M).values
    np.testing.assert_allclose(out["dist_dmmse"], ((pred_id - dmmse) ** 2).mean(axis=(1, 2)), rtol=1e-6)
    assert out.attrs["t_crit"] == int(steps[np.argmin(out["loss_ood"].values)])


def test_critical_step_on_constructed_curve():
    steps = np.array([0, 10, 20, 30, 40])
    assert critical_step(steps, np.array([3.0, 2.0, 1.0, 1.5, 2.5])) == 20
    assert critical_step(steps, np.array([3.0, 1.0, 1.0, 0.5, np.nan])) == 30
    with pytest.raises(ValueError):
        critical_step(steps, np.full(5, np.nan))


def test_stores_reopen_with_dims_coords_and_attrs(stores, tmp_path):
    _, baselines = stores
    write_dataset(baselines, tmp_path / "b.zarr")
    reopened = open_dataset(tmp_path / "b.zarr")
    xr.testing.assert_identical(reopened.drop_attrs(), baselines.drop_attrs())
    assert reopened.attrs["experiment"] == "tiny" and "code_version" in reopened.attrs
    assert math.isinf(reopened["M"].values[-1])
    reopened_lazy = xr.open_zarr(tmp_path / "b.zarr", consolidated=False)
    assert reopened_lazy["dmmse_id"].dims == ("M", "id_sequence", "token")


def test_failed_write_leaves_nothing(tmp_path):
    bad = xr.Dataset({"a": ("x", np.array([object()], dtype=object))})
    with pytest.raises(Exception):
        write_dataset(bad, tmp_path / "bad.zarr")
    assert list(tmp_path.iterdir()) == []


def test_baseline_loss_table_lists_every_predictor(stores):
    from transient_ridge.tables import baseline_loss_table

    _, baselines = stores
    table = baseline_loss_table(baselines)
    lines = table.splitlines()
    assert lines[0].startswith("| predictor | data | k=1 |") and len(lines) == 2 + 1 + 3 * 2
    ridge_mean = float(baselines["loss_ridge_ood"].mean())
    assert lines[2].endswith(f"| {ridge_mean:.3f} |")
