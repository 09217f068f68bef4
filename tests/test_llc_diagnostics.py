"""LLC health and convergence diagnostics against plain loops, on series with known behaviour, and the one status."""

import math

import numpy as np
import pytest

from transient_ridge.llc import (
    FAILED,
    HALF_Z_MAX,
    NOT_CONVERGED,
    RHAT_MAX,
    SOUND,
    SPIKE_RATIO,
    UNRELIABLE,
    estimate_status,
    half_drift_z,
    split_rhat,
    trace_peak_ratio,
)


def peak_ratio_reference(trace: np.ndarray, init: float) -> float:
    """Max finite entry of one estimate's (chain, draw) trace over its start loss, by loops."""
    best = -math.inf
    for chain in trace:
        for value in chain:
            if math.isfinite(value) and value > best:
                best = value
    if best == -math.inf or not math.isfinite(init) or init <= 0:
        return math.nan
    return best / init


def test_peak_ratio_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    traces = rng.gamma(2.0, 0.3, size=(3, 5, 4, 30))  # (M, step, chain, draw)
    traces[0, 1, 2, 10:] = np.nan  # a chain stopped early
    traces[1, 2] = np.nan  # an estimate with no trace at all
    traces[2, 3, 1, 7] = 40.0  # a spike
    init = rng.uniform(0.2, 0.6, size=(3, 5))
    init[2, 0] = 0.0
    got = trace_peak_ratio(traces, init)
    assert got.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            want = peak_ratio_reference(traces[i, j], init[i, j])
            assert (math.isnan(want) and math.isnan(got[i, j])) or got[i, j] == pytest.approx(want, rel=1e-12)
    assert got[2, 3] > SPIKE_RATIO
    assert math.isnan(got[1, 2]) and math.isnan(got[2, 0])


def test_scalar_init_and_single_estimate():
    trace = np.array([[0.5, 0.7], [0.6, 1.2]])
    assert float(trace_peak_ratio(trace, 0.4)) == pytest.approx(3.0)


def test_trace_without_chain_and_draw_dims_is_refused():
    with pytest.raises(ValueError, match="chain, draw"):
        trace_peak_ratio(np.ones(5), 1.0)
    with pytest.raises(ValueError, match="chain, draw"):
        split_rhat(np.ones(5))


def rhat_reference(draws: np.ndarray) -> float:
    """BDA3 split-R̂ of one (chain, draw) array, by loops over the split sequences."""
    h = draws.shape[1] // 2
    sequences = []
    for chain in draws:
        sequences.append(list(chain[:h]))
        sequences.append(list(chain[len(chain) - h:]))
    means = [sum(s) / h for s in sequences]
    within = sum(sum((v - m) ** 2 for v in s) / (h - 1) for s, m in zip(sequences, means)) / len(sequences)
    grand = sum(means) / len(means)
    between_over_h = sum((m - grand) ** 2 for m in means) / (len(means) - 1)
    return math.sqrt(((h - 1) / h * within + between_over_h) / within)


def half_z_reference(draws: np.ndarray, batches: int) -> float:
    """Second-half minus first-half pooled mean over its batch-means MCSE, by loops."""
    h = draws.shape[1] // 2
    b = h // batches
    C = draws.shape[0]
    means, variances = [0.0, 0.0], [0.0, 0.0]
    for half, start in enumerate((0, h)):
        for chain in draws:
            batch_means = [sum(chain[start + k * b : start + (k + 1) * b]) / b for k in range(batches)]
            m = sum(batch_means) / batches
            means[half] += m / C
            variances[half] += sum((x - m) ** 2 for x in batch_means) / (batches - 1) / batches / C**2
    return (means[1] - means[0]) / math.sqrt(variances[0] + variances[1])


@pytest.mark.parametrize("seed", range(6))
def test_split_rhat_and_half_z_match_plain_loops(seed):
    rng = np.random.default_rng(seed)
    C, n = rng.integers(1, 6), rng.integers(12, 60)
    draws = rng.gamma(2.0, 0.5, size=(C, n)) + rng.normal(size=(C, 1))
    if C > 1 or n >= 4:
        assert float(split_rhat(draws)) == pytest.approx(rhat_reference(draws), rel=1e-10)
    for batches in (2, 3, 5):
        if n // 2 // batches >= 1:
            assert float(half_drift_z(draws, batches)) == pytest.approx(half_z_reference(draws, batches), rel=1e-10)
    # batched over leading dims: the same as one at a time
    stack = rng.normal(size=(3, 2, C, n))
    np.testing.assert_allclose(split_rhat(stack), [[split_rhat(stack[i, j]) for j in range(2)] for i in range(3)])
    np.testing.assert_allclose(half_drift_z(stack), [[half_drift_z(stack[i, j]) for j in range(2)] for i in range(3)])


def ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Stationary AR(1) series of unit variance along the last dim."""
    x = np.empty(shape)
    x[..., 0] = rng.normal(size=shape[:-1])
    noise = rng.normal(size=shape) * math.sqrt(1 - rho**2)
    for t in range(1, shape[-1]):
        x[..., t] = rho * x[..., t - 1] + noise[..., t]
    return x


def test_stationary_chains_pass_and_drifting_or_disagreeing_chains_do_not():
    rng = np.random.default_rng(1)
    # 400 estimates of 4 stationary chains x 300 draws, correlation time ~10 draws (batches of 30):
    # the half test's false alarms at HALF_Z_MAX are rare, R-hat stays near 1
    stationary = 2.0 + 0.1 * ar1(rng, (400, 4, 300), rho=0.8)
    z, r = half_drift_z(stationary), split_rhat(stationary)
    assert np.mean(np.abs(z) > HALF_Z_MAX) < 0.02 and np.mean(np.abs(z) > 2.0) < 0.2
    assert np.mean(r > RHAT_MAX) < 0.02
    # chains still relaxing (the burn-in too short): a decay from 3 standard deviations above the level
    t = np.arange(300)
    drifting = stationary + 0.3 * np.exp(-t / 150.0)
    assert np.mean(np.abs(half_drift_z(drifting)) > HALF_Z_MAX) > 0.9
    # chains sitting at different levels (not mixing): R-hat flags them
    apart = stationary + np.array([0.0, 0.0, 0.0, 0.2])[:, None]
    assert np.mean(split_rhat(apart) > RHAT_MAX) > 0.9


def test_diagnostics_of_too_short_or_non_finite_draws_are_nan():
    assert math.isnan(float(split_rhat(np.ones((4, 3)))))  # halves of 1 draw
    assert math.isnan(float(half_drift_z(np.ones((4, 8)), batches=5)))  # batches of 0 draws
    draws = np.random.default_rng(0).normal(size=(4, 40))
    draws[1, 5] = np.nan
    assert math.isnan(float(split_rhat(draws))) and math.isnan(float(half_drift_z(draws)))
    assert math.isnan(float(half_drift_z(np.ones((4, 40)))))  # no spread: no MCSE
    with pytest.raises(ValueError, match="batches"):
        half_drift_z(draws, batches=1)


def status_reference(mean, failed, peak, rhat, z):
    """The status rule of docs/llc.md, one estimate at a time; a NaN check fails."""
    if not math.isfinite(mean):
        return FAILED
    if not (failed == 0) or not (peak <= SPIKE_RATIO):
        return UNRELIABLE
    if not (rhat <= RHAT_MAX) or not (abs(z) <= HALF_Z_MAX):
        return NOT_CONVERGED
    return SOUND


def test_estimate_status_against_the_rule_with_one_nan_behaviour():
    nan = math.nan
    cases = [
        (1.0, 0, 2.0, 1.01, 0.3, SOUND),
        (1.0, 1, 2.0, 1.01, 0.3, UNRELIABLE),
        (1.0, 0, 11.0, 1.01, 0.3, UNRELIABLE),
        (1.0, 0, 2.0, 1.2, 0.3, NOT_CONVERGED),
        (1.0, 0, 2.0, 1.01, -5.0, NOT_CONVERGED),
        (nan, 4, nan, nan, nan, FAILED),
        # a check that could not be computed fails, whichever check it is
        (1.0, nan, 2.0, 1.01, 0.3, UNRELIABLE),
        (1.0, 0, nan, 1.01, 0.3, UNRELIABLE),
        (1.0, 0, 2.0, nan, 0.3, NOT_CONVERGED),
        (1.0, 0, 2.0, 1.01, nan, NOT_CONVERGED),
    ]
    got = estimate_status(*(np.array([c[k] for c in cases], dtype=float) for k in range(5)))
    assert got.tolist() == [c[5] for c in cases]
    rng = np.random.default_rng(0)
    args = [rng.choice([1.0, nan], 200, p=[0.9, 0.1]), rng.choice([0.0, 1.0, nan], 200, p=[0.8, 0.1, 0.1]),
            rng.choice([2.0, 20.0, nan], 200, p=[0.8, 0.1, 0.1]), rng.choice([1.0, 1.5, nan], 200, p=[0.8, 0.1, 0.1]),
            rng.choice([0.0, 9.0, nan], 200, p=[0.8, 0.1, 0.1])]
    assert estimate_status(*args).tolist() == [status_reference(*row) for row in zip(*args)]
