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


def test_store_health_reads_new_and_old_stores():
    import xarray as xr

    from transient_ridge.llc_health import store_health

    trace = np.full((1, 3, 2, 4), 0.5)
    trace[0, 1, 0, 2] = 5.0  # 20x the start loss
    new = xr.Dataset(
        {"llc_mean": (("M", "step"), [[1.0, 2.0, np.nan]]), "failed_chains": (("M", "step"), [[0.0, 0.0, 2.0]]),
         "init_loss": (("M", "step"), [[0.25] * 3]), "loss_trace": (("M", "step", "chain", "draw"), trace)},
        coords={"M": [4.0], "step": [1, 2, 3]},
    )
    health = store_health(new.transpose("step", "M", ...))  # dims in any order
    assert health["status"].tolist() == [["sound", "unreliable", "failed"]]
    assert health["recorded"].tolist() == [[True, True, True]] and health["peak"][0, 1] == 20.0
    old = new[["llc_mean"]]  # a store written before the health fields: no failed chains, no peaks
    health = store_health(old)
    assert health["recorded"].tolist() == [[True, True, False]] and np.isnan(health["peak"]).all()
    assert health["status"].tolist() == [["sound", "sound", "failed"]]
