"""The sampler: stateless batches, nested task sets, uniform task frequencies; probe sets."""

import math

import numpy as np
import torch

from transient_ridge.data import draw_task_sequence, make_probe_sets, sample_batch, task_set


def _batch(tasks, step, seed=1, B=64):
    return sample_batch(tasks, seed=seed, step=step, batch_size=B, K=4, D=3, noise_variance=0.1)


def test_same_seed_and_step_give_same_batch():
    tasks = torch.randn(5, 3)
    x1, y1 = _batch(tasks, 7)
    x2, y2 = _batch(tasks, 7)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = _batch(tasks, 8)
    x4, _ = _batch(tasks, 7, seed=2)
    assert not torch.equal(x1, x3) and not torch.equal(x1, x4)


def test_batches_do_not_depend_on_global_rng():
    tasks = torch.randn(5, 3)
    torch.manual_seed(0)
    x1, _ = _batch(tasks, 3)
    torch.manual_seed(123)
    torch.randn(100)
    x2, _ = _batch(tasks, 3)
    assert torch.equal(x1, x2)


def test_task_sets_are_nested():
    tasks = draw_task_sequence(0, 32, 3)
    assert np.array_equal(task_set(tasks, 8), task_set(tasks, 32)[:8])
    assert np.array_equal(task_set(tasks, 1)[0], tasks[0])
    assert task_set(tasks, math.inf) is None
    longer = draw_task_sequence(0, 64, 3)
    assert np.array_equal(longer[:32], tasks)


def test_targets_follow_a_task_from_the_set():
    tasks = torch.randn(3, 3, dtype=torch.float64)
    x, y = sample_batch(tasks, seed=0, step=0, batch_size=50, K=6, D=3, noise_variance=0.0, dtype=torch.float64)
    fits = torch.einsum("bkd,md->bkm", x, tasks)  # (B, K, M)
    exact = torch.isclose(fits, y[..., None], atol=1e-10).all(dim=1)  # (B, M)
    assert bool(exact.any(dim=1).all())


def test_task_frequencies_are_uniform():
    """Chi-square test of task indices drawn over many steps (df = M - 1 = 7)."""
    M = 8
    tasks = torch.eye(M)[:, :M]  # task m is the basis vector e_m: recover its index from y with x = e
    counts = np.zeros(M)
    for step in range(200):
        generator_batch = sample_batch(tasks, seed=3, step=step, batch_size=64, K=M, D=M, noise_variance=0.0)
        x, y = generator_batch
        t_hat = torch.linalg.solve(x, y.unsqueeze(-1)).squeeze(-1)  # (B, M): K = D so X t = y is square
        counts += np.bincount(t_hat.argmax(dim=1).numpy(), minlength=M)
    expected = counts.sum() / M
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 24.3  # 99.9 % quantile of chi-square with 7 degrees of freedom


def test_infinite_M_draws_fresh_gaussian_tasks():
    x, y = sample_batch(None, seed=0, step=0, batch_size=4000, K=8, D=1, noise_variance=0.0)
    task = (y / x[..., 0])[:, 0]
    assert abs(float(task.mean())) < 0.1 and abs(float(task.std()) - 1) < 0.1


def test_probe_sets_shapes_root_task_and_stability():
    tasks = draw_task_sequence(0, 16, 2)
    kwargs = dict(seed=3, K=5, noise_variance=0.0, root_sequences=6, ood_sequences=7, id_sequences=8)
    probes = make_probe_sets(tasks, (1.0, 16.0, math.inf), **kwargs)
    assert probes.root_x.shape == (6, 5, 2) and probes.ood_y.shape == (7, 5) and probes.id_x.shape == (3, 8, 5, 2)
    np.testing.assert_allclose(probes.root_y, probes.root_x @ tasks[0], rtol=1e-5, atol=1e-5)
    # adding an M to the grid leaves the other sets unchanged
    more = make_probe_sets(tasks, (1.0, 4.0, 16.0, math.inf), **kwargs)
    np.testing.assert_array_equal(more.id_x[2], probes.id_x[1])


def test_a_runs_slice_of_the_tasks_store_does_not_depend_on_the_rest_of_the_grid(tiny_block):
    # Adding an M rewrites tasks.zarr but must not change what the existing runs
    # saw: the workflow relies on this to keep them (ancient input, per-run params).
    from transient_ridge.config import ExperimentConfig
    from transient_ridge.tasks import build_tasks_dataset

    small = ExperimentConfig.from_dict("tiny", {**tiny_block, "data": {**tiny_block["data"], "M": [1, 4, "inf"]}})
    grown = ExperimentConfig.from_dict("tiny", {**tiny_block, "data": {**tiny_block["data"], "M": [1, 2, 4, 16, "inf"]}})
    a, b = build_tasks_dataset(small), build_tasks_dataset(grown)
    assert b.sizes["task"] == 16 and a.sizes["task"] == 4
    np.testing.assert_array_equal(a["tasks"].values, b["tasks"].values[:4])
    for name in ("root_x", "root_y", "ood_x", "ood_y"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    for M in (1.0, 4.0, math.inf):
        for name in ("id_x", "id_y"):
            np.testing.assert_array_equal(a[name].sel(M=M).values, b[name].sel(M=M).values)
    # and the per-M sets do differ from one another (the check above is not vacuous)
    assert not np.array_equal(b["id_x"].sel(M=2.0).values, b["id_x"].sel(M=4.0).values)
