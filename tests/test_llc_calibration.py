"""The ε calibration rule: against a plain-loop reference, on hand-made sweeps, and on a model with a known λ."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from transient_ridge.config import LLCConfig
from transient_ridge.llc import (
    FAILED,
    NOT_CONVERGED,
    PLATEAU_TOLERANCE,
    SOUND,
    UNRELIABLE,
    choose_epsilon,
    fit_checkpoint,
)

EPS = np.array([1e-4, 3e-4, 1e-3, 3e-3])


def reference_choice(eps, mean, sem, status, final):
    """The rule of docs/llc.md, one point and one ε at a time."""
    P, E = mean.shape

    def healthy(p, e):
        return status[p][e] == SOUND and math.isfinite(mean[p, e])

    def accepted(p, e):
        if e == 0 or not (healthy(p, e) and healthy(p, e - 1)):
            return False
        s = math.sqrt((0 if math.isnan(sem[p, e]) else sem[p, e]) ** 2 + (0 if math.isnan(sem[p, e - 1]) else sem[p, e - 1]) ** 2)
        return abs(mean[p, e] - mean[p, e - 1]) <= PLATEAU_TOLERANCE * abs(mean[p, e - 1]) + 2 * s

    eligible = [E > 1 and accepted(p, 1) for p in range(P)]
    if any(eligible) and all(eligible[p] for p in range(P) if final[p]):
        for e in reversed(range(E)):
            if all(accepted(p, e) for p in range(P) if eligible[p]):
                return eps[e], True
    for e in reversed(range(E)):
        if all(healthy(p, e) for p in range(P)):
            return eps[e], False
    with_number = [e for e in range(E) if any(status[p][e] != FAILED and math.isfinite(mean[p, e]) for p in range(P))]
    if not with_number:
        return math.nan, False
    bad = {e: sum(not healthy(p, e) for p in range(P)) for e in with_number}
    return eps[min(with_number, key=lambda e: (bad[e], e))], False


def sweep(mean, sem=None, status=None):
    mean = np.asarray(mean, float)
    return (
        mean,
        np.zeros_like(mean) if sem is None else np.asarray(sem, float),
        np.full(mean.shape, SOUND, dtype="<U13") if status is None else np.asarray(status, dtype="<U13"),
    )


def test_plateau_picks_the_largest_epsilon_accepted_everywhere():
    # point 0: flat up to 1e-3, then jumps; point 1: flat everywhere
    mean, sem, status = sweep([[10.0, 10.5, 11.0, 20.0], [5.0, 5.1, 5.2, 5.3]])
    choice = choose_epsilon(EPS, mean, sem, status)
    assert choice.epsilon == 1e-3 and choice.rule_satisfied
    assert choice.accepted.tolist() == [[False, True, True, False], [False, True, True, True]]
    assert choice.eligible.tolist() == [True, True]
    assert not choice.plateau[:, 0].any()  # the smallest ε has no neighbour


def test_an_estimate_that_is_not_sound_is_not_healthy():
    mean, sem, status = sweep([[10.0, 10.0, 10.0, 10.0]])
    status[0, 3] = UNRELIABLE
    status[0, 2] = NOT_CONVERGED
    choice = choose_epsilon(EPS, mean, sem, status)
    assert choice.healthy.tolist() == [[True, True, False, False]]
    assert choice.epsilon == 3e-4 and choice.rule_satisfied


def test_a_point_without_a_plateau_is_left_out_and_named():
    # point 0 (an early checkpoint): the estimate keeps moving with ε even at the smallest two;
    # point 1 (the final one): a plateau up to 1e-3
    mean, sem, status = sweep([[7.8, 15.4, 30.0, 55.1], [5.0, 5.1, 5.3, 9.0]], sem=np.full((2, 4), 0.1))
    choice = choose_epsilon(EPS, mean, sem, status, final=[False, True], labels=["M=8 step 2000", "M=8 step 8000"])
    assert choice.eligible.tolist() == [False, True]
    assert choice.rule_satisfied and choice.epsilon == 1e-3
    assert "no plateau (left out of the rule): M=8 step 2000" in choice.reason


def test_a_final_checkpoint_without_a_plateau_fails_the_rule_and_says_so():
    mean, sem, status = sweep([[5.0, 5.1, 5.3, 9.0], [7.8, 15.4, 30.0, 55.1]], sem=np.full((2, 4), 0.1))
    status[1, 3] = UNRELIABLE
    choice = choose_epsilon(EPS, mean, sem, status, final=[False, True], labels=["early", "final"])
    assert not choice.rule_satisfied and choice.epsilon == 1e-3
    assert "RULE NOT SATISFIED" in choice.reason and "final checkpoint(s) final show no plateau" in choice.reason


def test_nothing_sound_falls_back_to_the_fewest_unsound_points():
    mean, sem, status = sweep([[1.0, 1.0, 1.0, math.nan], [1.0, 1.0, 1.0, math.nan]])
    status[:, 3] = FAILED
    status[0, :3] = UNRELIABLE  # point 0 spikes everywhere it ran
    status[1, 1:3] = UNRELIABLE
    choice = choose_epsilon(EPS, mean, sem, status)
    assert not choice.rule_satisfied and choice.epsilon == 1e-4  # 1 unsound point, fewer than the others
    assert "not sound at 1 of 2 points" in choice.reason


def test_every_epsilon_failing_gives_no_epsilon():
    mean, sem, status = sweep(np.full((3, 4), math.nan))
    status[:] = FAILED
    choice = choose_epsilon(EPS, mean, sem, status)
    assert math.isnan(choice.epsilon) and not choice.rule_satisfied and "every epsilon" in choice.reason


@pytest.mark.parametrize("seed", range(30))
def test_matches_the_plain_loop_reference(seed):
    rng = np.random.default_rng(seed)
    P, E = rng.integers(1, 5), rng.integers(1, 6)
    eps = np.unique(np.sort(rng.uniform(1e-5, 1e-2, E)))
    E = len(eps)
    mean = 10 + rng.normal(scale=rng.choice([0.5, 3.0]), size=(P, E))
    mean[rng.random((P, E)) < 0.1] = np.nan
    sem = np.where(rng.random((P, E)) < 0.1, np.nan, rng.uniform(0, 1, (P, E)))
    status = rng.choice([SOUND, NOT_CONVERGED, UNRELIABLE], size=(P, E), p=[0.7, 0.15, 0.15])
    status = np.where(np.isnan(mean), FAILED, status)
    final = rng.random(P) < 0.4
    choice = choose_epsilon(eps, mean, sem, status, final)
    want = reference_choice(eps, mean, sem, status, final)
    assert choice.rule_satisfied == want[1]
    assert (math.isnan(choice.epsilon) and math.isnan(want[0])) or choice.epsilon == want[0]


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="ascending"):
        choose_epsilon(np.array([1e-3, 1e-4]), *sweep([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="points"):
        choose_epsilon(EPS, *sweep([[1.0, 1.0]]))


class Linear(nn.Module):
    """y = w · x (no bias), called as model(x, y) like the pipeline's models."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Linear(d, 1, bias=False, dtype=torch.float64)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.w(x)


def test_the_rule_is_satisfied_on_a_regular_model_and_its_choice_estimates_the_known_lambda():
    """Linear regression with d = 4 parameters at its OLS weights: λ = d/2 = 2.

    Whitened inputs make ℓ_n(w) − ℓ_n(w*) = ‖w − w*‖², so the localized tempered
    posterior is Gaussian with per-coordinate variance 1/(2nβ + γ) and
    E[nβ(ℓ_n − ℓ_n(w*))] = nβ d / (2nβ + γ): 1.990 at nβ = 1000, γ = 10 (0.5 % below
    d/2). The SGLD (Euler) bias grows with ε nβ: about 0.5 %, 1.5 %, 5 % at the grid's
    1e-5, 3e-5, 1e-4. Chains are sized in SGLD time like the pipeline's (units of
    1/(εγ) steps); here the curvature 2nβ relaxes the chains 200x faster than γ, so a
    fraction of a unit suffices. The rule must be satisfied, and its choice must be
    within 3 s.e. of d/2.
    """
    torch.manual_seed(0)
    d, n = 4, 1000
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = x @ torch.linalg.inv(torch.linalg.cholesky(x.T @ x / n)).T  # xᵀx / n = I
    y = (x @ torch.randn(d, 1, generator=g, dtype=torch.float64) + 0.1 * torch.randn(n, 1, generator=g,
                                                                                       dtype=torch.float64))
    model = Linear(d)
    with torch.no_grad():
        model.w.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    settings = LLCConfig(epsilon=1e-5, gamma=10.0, nbeta=1000.0, num_samples=n, num_chains=8, burnin_time=0.02,
                         draw_time=0.2, batch_size=250, num_checkpoints=1)
    grid = np.array([1e-5, 3e-5, 1e-4])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        records = [fit_checkpoint(model, (x, y), settings, seed=0, epsilon=float(e)) for e in grid]
    finally:
        torch.set_num_threads(threads)
    assert [r.num_burnin + r.num_draws for r in records] == [2200, 734, 220]
    choice = choose_epsilon(grid, [[r.llc_mean for r in records]], [[r.llc_sem for r in records]],
                            [[r.status for r in records]], final=[True])
    assert choice.rule_satisfied, choice.reason
    chosen = records[int(np.flatnonzero(grid == choice.epsilon)[0])]
    assert chosen.status == SOUND and chosen.llc_sem < 0.1 * d / 2
    z = (chosen.llc_mean - d / 2) / chosen.llc_sem
    assert abs(z) < 3, f"chosen epsilon={choice.epsilon:g}: {chosen.llc_mean:.4f} ± {chosen.llc_sem:.4f} is {z:+.1f} SE from 2"


def test_chain_lengths_follow_sgld_time():
    settings = LLCConfig(epsilon=3e-4, gamma=100.0, nbeta=30.0, num_samples=64, num_chains=4, burnin_time=5,
                         draw_time=10, batch_size=16, num_checkpoints=1)
    # the lengths quoted for transient: 167 + 334 steps at 3e-4, 501 + 1001 at 1e-4 (draws rounded up)
    assert settings.chain_length(3e-4) == (167, 334)
    assert settings.chain_length(1e-4) == (500, 1000)
    assert settings.chain_length(1e-3) == (50, 100)  # exact multiples are not rounded up by float error
    thinned = dataclasses.replace(settings, steps_between_draws=3)
    assert thinned.chain_length(1e-3) == (50, 34)
