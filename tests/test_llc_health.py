"""LLC health checks against a plain loop over chains and draws."""

import math

import numpy as np
import pytest

from transient_ridge.llc_health import SPIKE_RATIO, trace_peak_ratio


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
