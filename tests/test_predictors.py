"""Ridge and dMMSE against plain per-sequence loops and their limiting cases."""

import numpy as np
import pytest

from transient_ridge.data import draw_task_sequence, sample_sequences
from transient_ridge.predictors import dmmse_predict, per_token_mse, ridge_predict


def ridge_loop(x, y, noise_variance):
    B, K, D = x.shape
    out = np.zeros((B, K))
    for b in range(B):
        for k in range(K):
            X, Y = x[b, :k].astype(float), y[b, :k].astype(float)
            A = X.T @ X + noise_variance * np.eye(D)
            t_hat = np.linalg.inv(A) @ (X.T @ Y)
            out[b, k] = x[b, k] @ t_hat
    return out


def dmmse_loop(x, y, tasks, noise_variance):
    B, K, _ = x.shape
    out = np.zeros((B, K))
    for b in range(B):
        for k in range(K):
            energies = np.array(
                [np.sum((y[b, :k] - x[b, :k] @ t) ** 2) / (2 * noise_variance) for t in tasks]
            )
            w = np.exp(-(energies - energies.min()))
            w /= w.sum()
            out[b, k] = x[b, k] @ (w @ tasks)
    return out


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    tasks = draw_task_sequence(1, 7, 3)
    x, y = sample_sequences(rng, tasks, 5, 6, 3, 0.2)
    return x, y, tasks


def test_ridge_matches_loop(batch):
    x, y, _ = batch
    np.testing.assert_allclose(ridge_predict(x, y, 0.2), ridge_loop(x, y, 0.2), rtol=1e-10, atol=1e-12)


def test_ridge_empty_prefix_is_zero(batch):
    x, y, _ = batch
    assert np.all(ridge_predict(x, y, 0.2)[:, 0] == 0.0)


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_dmmse_matches_loop_for_any_chunking(batch, chunk):
    x, y, tasks = batch
    expected = dmmse_loop(x, y, tasks, 0.2)
    np.testing.assert_allclose(dmmse_predict(x, y, tasks, 0.2, chunk_size=chunk), expected, rtol=1e-10, atol=1e-12)


def test_dmmse_empty_prefix_is_mean_task(batch):
    x, y, tasks = batch
    np.testing.assert_allclose(dmmse_predict(x, y, tasks, 0.2)[:, 0], x[:, 0] @ tasks.mean(axis=0), rtol=1e-10)


def test_dmmse_single_task_is_that_task(batch):
    x, y, tasks = batch
    np.testing.assert_allclose(dmmse_predict(x, y, tasks[:1], 0.2), x @ tasks[0], rtol=1e-10)


def test_dmmse_survives_tiny_noise_without_overflow(batch):
    x, y, tasks = batch
    out = dmmse_predict(x, y * 100, tasks, 1e-6)
    assert np.all(np.isfinite(out))


def test_dmmse_approaches_ridge_as_M_grows():
    """On q_inf data, dMMSE_M's excess loss over ridge shrinks as M grows (statistical)."""
    rng = np.random.default_rng(5)
    D, K, sigma2 = 2, 6, 0.1
    x, y = sample_sequences(rng, None, 400, K, D, sigma2)
    ridge_loss = per_token_mse(ridge_predict(x, y, sigma2), y).mean()
    excess = []
    for M in (4, 64, 4096):
        tasks = draw_task_sequence(11, M, D)
        excess.append(per_token_mse(dmmse_predict(x, y, tasks, sigma2), y).mean() - ridge_loss)
    assert excess[0] > excess[1] > excess[2]
    assert excess[2] < 0.05 * ridge_loss


def test_ridge_is_bayes_optimal_on_gaussian_tasks():
    """Ridge beats dMMSE_M on q_inf and dMMSE_M beats ridge on q_M (both are Bayes predictors)."""
    rng = np.random.default_rng(2)
    D, K, sigma2 = 2, 6, 0.1
    tasks = draw_task_sequence(3, 4, D)
    x_ood, y_ood = sample_sequences(rng, None, 500, K, D, sigma2)
    x_id, y_id = sample_sequences(rng, tasks, 500, K, D, sigma2)
    assert per_token_mse(ridge_predict(x_ood, y_ood, sigma2), y_ood).mean() < per_token_mse(
        dmmse_predict(x_ood, y_ood, tasks, sigma2), y_ood
    ).mean()
    assert per_token_mse(dmmse_predict(x_id, y_id, tasks, sigma2), y_id).mean() < per_token_mse(
        ridge_predict(x_id, y_id, sigma2), y_id
    ).mean()


def test_noise_variance_must_be_positive(batch):
    x, y, tasks = batch
    with pytest.raises(ValueError, match="noise_variance"):
        ridge_predict(x, y, 0.0)
    with pytest.raises(ValueError, match="noise_variance"):
        dmmse_predict(x, y, tasks, -1.0)
