"""The ε calibration rule against a plain-loop reference and on hand-made sweeps."""

import math

import numpy as np
import pytest

from transient_ridge.llc_calibration import PLATEAU_TOLERANCE, choose_epsilon
from transient_ridge.llc_health import SPIKE_RATIO, estimate_status

EPS = np.array([1e-4, 3e-4, 1e-3, 3e-3])


def reference_choice(eps, mean, sem, failed, peak):
    """The rule of docs/llc.md, one point and one ε at a time."""
    P, E = mean.shape

    def healthy(p, e):
        return math.isfinite(mean[p, e]) and failed[p, e] == 0 and peak[p, e] <= SPIKE_RATIO

    def accepted(p, e):
        if e == 0 or not (healthy(p, e) and healthy(p, e - 1)):
            return False
        s = math.sqrt((0 if math.isnan(sem[p, e]) else sem[p, e]) ** 2 + (0 if math.isnan(sem[p, e - 1]) else sem[p, e - 1]) ** 2)
        return abs(mean[p, e] - mean[p, e - 1]) <= PLATEAU_TOLERANCE * abs(mean[p, e - 1]) + 2 * s

    for e in reversed(range(E)):
        if all(accepted(p, e) for p in range(P)):
            return eps[e], True
    for e in reversed(range(E)):
        if all(healthy(p, e) for p in range(P)):
            return eps[e], False
    bad = [sum(not healthy(p, e) for p in range(P)) for e in range(E)]
    return eps[bad.index(min(bad))], False


def sweep(mean, sem=None, failed=None, peak=None):
    mean = np.asarray(mean, float)
    return (
        mean,
        np.zeros_like(mean) if sem is None else np.asarray(sem, float),
        np.zeros_like(mean) if failed is None else np.asarray(failed, float),
        np.full_like(mean, 2.0) if peak is None else np.asarray(peak, float),
    )


def test_plateau_picks_the_largest_epsilon_accepted_everywhere():
    # point 0: flat up to 1e-3, then jumps; point 1: flat everywhere
    mean, sem, failed, peak = sweep([[10.0, 10.5, 11.0, 20.0], [5.0, 5.1, 5.2, 5.3]])
    choice = choose_epsilon(EPS, mean, sem, failed, peak)
    assert choice.epsilon == 1e-3 and choice.rule_satisfied
    assert choice.accepted.tolist() == [[False, True, True, False], [False, True, True, True]]
    assert not choice.plateau[:, 0].any()  # the smallest ε has no neighbour


def test_a_spike_or_a_diverged_chain_makes_an_epsilon_unhealthy():
    mean, sem, failed, peak = sweep([[10.0, 10.0, 10.0, 10.0]])
    peak[0, 3] = SPIKE_RATIO * 1.5
    failed[0, 2] = 1
    choice = choose_epsilon(EPS, mean, sem, failed, peak)
    assert choice.healthy.tolist() == [[True, True, False, False]]
    # 1e-3 is unhealthy itself, 3e-3 spiked: 3e-4 is the largest accepted
    assert choice.epsilon == 3e-4 and choice.rule_satisfied


def test_no_plateau_falls_back_to_the_largest_healthy_epsilon_and_says_so():
    # the estimate keeps moving with ε (the early-checkpoint artefact of docs/llc.md)
    mean, sem, failed, peak = sweep([[7.8, 15.4, 19.1 * 2, 55.1]], sem=[[0.1, 0.1, 0.1, 0.1]])
    peak[0, 3] = 30.0
    choice = choose_epsilon(EPS, mean, sem, failed, peak)
    assert not choice.rule_satisfied and choice.epsilon == 1e-3
    assert "RULE NOT SATISFIED" in choice.reason and "largest with healthy chains" in choice.reason


def test_nothing_healthy_falls_back_to_the_fewest_unhealthy_points():
    mean, sem, failed, peak = sweep([[1.0, 1.0, 1.0, math.nan], [1.0, 1.0, 1.0, math.nan]])
    failed[:, 3] = 4
    peak[0, :3] = 50.0  # point 0 spikes everywhere it ran
    peak[1, 1:3] = 50.0
    choice = choose_epsilon(EPS, mean, sem, failed, peak)
    assert not choice.rule_satisfied and choice.epsilon == 1e-4  # 1 unhealthy point, fewer than the others
    assert "unhealthy at 1 of 2 points" in choice.reason


@pytest.mark.parametrize("seed", range(20))
def test_matches_the_plain_loop_reference(seed):
    rng = np.random.default_rng(seed)
    P, E = rng.integers(1, 5), rng.integers(1, 6)
    eps = np.sort(rng.uniform(1e-5, 1e-2, E))
    eps = np.unique(eps)
    E = len(eps)
    mean = 10 + rng.normal(scale=rng.choice([0.5, 3.0]), size=(P, E))
    mean[rng.random((P, E)) < 0.1] = np.nan
    sem = np.where(rng.random((P, E)) < 0.1, np.nan, rng.uniform(0, 1, (P, E)))
    failed = (rng.random((P, E)) < 0.15).astype(float)
    peak = rng.choice([2.0, 5.0, 20.0], size=(P, E), p=[0.6, 0.3, 0.1])
    choice = choose_epsilon(eps, mean, sem, failed, peak)
    assert (choice.epsilon, choice.rule_satisfied) == reference_choice(eps, mean, sem, failed, peak)


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="ascending"):
        choose_epsilon(np.array([1e-3, 1e-4]), *sweep([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="points"):
        choose_epsilon(EPS, *sweep([[1.0, 1.0]]))


def test_estimate_status():
    status = estimate_status([1.0, 1.0, 1.0, math.nan, 1.0], [0, 1, 0, 4, math.nan], [2.0, 2.0, 11.0, math.nan, 2.0])
    assert status.tolist() == ["sound", "unreliable", "unreliable", "failed", "sound"]
