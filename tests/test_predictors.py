"""Ridge and dMMSE against plain per-sequence loops and their limiting cases."""

import numpy as np
import pytest

from transient_ridge.data import draw_task_sequence, sample_sequences
from transient_ridge.predictors import (
    dmmse_predict,
    gd_predict,
    least_squares_defined,
    least_squares_predict,
    per_token_mse,
    prefix_spectra,
    ridge_penalty_predict,
    ridge_predict,
)


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


# --------------------------------------------------------------------------- predictor families


def gd_loop(x, y, step_size, k):
    """k plain gradient steps from w = 0 on ‖Y − Xw‖² / 2n, per sequence and prefix (0 for the empty prefix)."""
    B, K, D = x.shape
    out = np.zeros((B, K))
    for b in range(B):
        for pos in range(1, K):
            X, Y = x[b, :pos].astype(float), y[b, :pos].astype(float)
            w = np.zeros(D)
            for _ in range(k):
                gradient = X.T @ (X @ w - Y) / pos
                w = w - step_size * gradient
            out[b, pos] = x[b, pos] @ w
    return out


def gd_closed_form(x, y, step_size, k):
    """t̂_k = Σ_{j<k} (I − ηA)^j η b with A = XᵀX/n, b = XᵀY/n, by matrix powers."""
    B, K, D = x.shape
    out = np.zeros((B, K))
    for b in range(B):
        for pos in range(1, K):
            X, Y = x[b, :pos].astype(float), y[b, :pos].astype(float)
            A, moment = X.T @ X / pos, X.T @ Y / pos
            t = sum(np.linalg.matrix_power(np.eye(D) - step_size * A, j) @ (step_size * moment) for j in range(k))
            out[b, pos] = x[b, pos] @ t
    return out


def least_squares_loop(x, y):
    """np.linalg.lstsq per prefix: the minimum-norm least-squares solution."""
    B, K, _ = x.shape
    out = np.zeros((B, K))
    for b in range(B):
        for pos in range(1, K):
            t, *_ = np.linalg.lstsq(x[b, :pos].astype(float), y[b, :pos].astype(float), rcond=None)
            out[b, pos] = x[b, pos] @ t
    return out


@pytest.fixture
def long_batch():
    """More pairs than dimensions, so least squares is defined on the later prefixes."""
    rng = np.random.default_rng(4)
    tasks = draw_task_sequence(2, 5, 3)
    x, y = sample_sequences(rng, tasks, 4, 9, 3, 0.1)
    return x, y


def test_ridge_penalty_at_noise_variance_is_ridge(long_batch):
    x, y = long_batch
    out = ridge_penalty_predict(x, y, [0.03, 0.1, 7.0])
    np.testing.assert_allclose(out[1], ridge_predict(x, y, 0.1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("penalty", [1e-3, 0.5, 30.0])
def test_ridge_penalty_matches_loop(long_batch, penalty):
    x, y = long_batch
    np.testing.assert_allclose(
        ridge_penalty_predict(x, y, [penalty])[0], ridge_loop(x, y, penalty), rtol=1e-9, atol=1e-12
    )


def test_ridge_penalty_limits(long_batch):
    """λ → 0 is least squares where it is defined; λ → ∞ shrinks every prediction to 0."""
    x, y = long_batch
    defined = least_squares_defined(x.shape[1], x.shape[2])
    small, large = ridge_penalty_predict(x, y, [1e-9, 1e9])
    np.testing.assert_allclose(small[:, defined], least_squares_loop(x, y)[:, defined], rtol=1e-5, atol=1e-7)
    assert np.abs(large).max() < 1e-7


@pytest.mark.parametrize("step_size", [0.05, 0.4, 1.2])
def test_gd_matches_plain_loop_and_closed_form(long_batch, step_size):
    x, y = long_batch
    steps = [3, 1, 8]  # any order
    out = gd_predict(x, y, [step_size], steps)
    for i, k in enumerate(steps):
        np.testing.assert_allclose(out[0, i], gd_loop(x, y, step_size, k), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(out[0, i], gd_closed_form(x, y, step_size, k), rtol=1e-9, atol=1e-12)


def test_one_gd_step_is_the_linear_attention_solution(long_batch):
    """k = 1: η x_kᵀ XᵀY / n, the prefix average of y_j x_j·x_k scaled by η."""
    x, y = (np.asarray(a, dtype=np.float64) for a in long_batch)
    B, K, _ = x.shape
    expected = np.zeros((B, K))
    for b in range(B):
        for pos in range(1, K):
            expected[b, pos] = 0.3 * np.mean([y[b, j] * (x[b, j] @ x[b, pos]) for j in range(pos)])
    np.testing.assert_allclose(gd_predict(x, y, [0.3], [1])[0, 0], expected, rtol=1e-10, atol=1e-12)


def test_gd_converges_to_least_squares(long_batch):
    """Many small-enough steps reach the minimum-norm least-squares solution on every prefix."""
    x, y = long_batch
    out = gd_predict(x, y, [0.2], [4000])[0, 0]
    np.testing.assert_allclose(out, least_squares_loop(x, y), rtol=1e-6, atol=1e-8)


def test_gd_grid_shape_and_empty_prefix(long_batch):
    x, y = long_batch
    out = gd_predict(x, y, [0.1, 0.2], [1, 2, 5])
    assert out.shape == (2, 3, *y.shape)
    assert np.all(out[..., 0] == 0.0)


def test_least_squares_matches_lstsq_including_short_prefixes(long_batch):
    x, y = long_batch
    np.testing.assert_allclose(least_squares_predict(x, y), least_squares_loop(x, y), rtol=1e-8, atol=1e-10)
    assert least_squares_defined(9, 3).tolist() == [False] * 3 + [True] * 6


def test_families_share_one_spectral_decomposition(long_batch):
    x, y = long_batch
    spectra = prefix_spectra(x, y)
    np.testing.assert_array_equal(ridge_penalty_predict(spectra, None, [0.2]), ridge_penalty_predict(x, y, [0.2]))
    np.testing.assert_array_equal(gd_predict(spectra, None, [0.2], [2]), gd_predict(x, y, [0.2], [2]))
    np.testing.assert_array_equal(least_squares_predict(spectra), least_squares_predict(x, y))


def test_family_arguments_are_checked(long_batch):
    x, y = long_batch
    with pytest.raises(ValueError, match="penalties"):
        ridge_penalty_predict(x, y, [0.0])
    with pytest.raises(ValueError, match="step sizes"):
        gd_predict(x, y, [-0.1], [1])
    with pytest.raises(ValueError, match="step counts"):
        gd_predict(x, y, [0.1], [0])
    with pytest.raises(ValueError, match="targets"):
        least_squares_predict(x)
