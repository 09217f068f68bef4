"""Tests of the batched SGLD estimator of the local learning coefficient.

Known answers (each check: the estimate lies within 3 standard errors across
chains of the truth, at the settings written in the test):

* regular model, linear regression with d parameters: λ = d/2;
* singular model f(x) = w1^a w2^b x at w* = 0: λ = 1/(2 max(a, b))
  (Watanabe 2009, *Algebraic Geometry and Statistical Learning Theory*, the
  normal-crossing case; Lau et al. 2023, arXiv 2308.12108, use such models);
  also the finite-nβ, finite-γ posterior mean by one-dimensional quadrature;
* reduced-rank regression at true rank 0 and at true rank 1: Aoyagi &
  Watanabe 2005, *Stochastic complexities of reduced rank regression in
  Bayesian estimation*.

The LLC uses the population quantity nβ(E ℓ − ℓ(w*)); the data sets are
built so that w* is an exact minimum of the empirical loss ℓ_n (OLS weights,
or targets with no component the model can fit), and λ̂ is an estimate whose
error is the spread across chains plus small SGLD biases that the settings
keep well inside that spread.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transient_ridge.llc import SGLDLearningCoefficient, chain_seeds, estimate_llc, fit_together
from transient_ridge.model import InContextRegressionTransformer, ModelConfig

DTYPE = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------- models


class Monomial(nn.Module):
    """f(x) = w1^a · w2^b · x, with w = (w1, w2) starting at 0."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.w = nn.Parameter(torch.zeros(2, dtype=DTYPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w[0] ** self.a * self.w[1] ** self.b * x


class ReducedRank(nn.Module):
    """y = B A x with A: (H, M), B: (N, H), no biases."""

    def __init__(self, M: int, N: int, H: int) -> None:
        super().__init__()
        self.A = nn.Linear(M, H, bias=False, dtype=DTYPE)
        self.B = nn.Linear(H, N, bias=False, dtype=DTYPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.B(self.A(x))


def whitened_inputs(n: int, d: int, seed: int) -> torch.Tensor:
    """(n, d) Gaussian inputs transformed so that xᵀx / n = I exactly."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    chol = torch.linalg.cholesky(x.T @ x / n)
    return x @ torch.linalg.inv(chol).T


def assert_within_3se(est: SGLDLearningCoefficient, truth: float) -> None:
    z = (est.llc_mean_ - truth) / est.llc_sem_
    print(f"λ̂ = {est.llc_mean_:.4f} ± {est.llc_sem_:.4f} (SE over {est.num_chains} chains), "
          f"reference {truth:.4f}, z = {z:+.2f}, {est.elapsed_s_:.1f} s")
    assert abs(z) < 3, f"λ̂ = {est.llc_mean_:.4f} ± {est.llc_sem_:.4f} is {z:+.1f} SE from {truth:.4f}"


# ---------------------------------------------------------- known answers


def linear_regression_at_ols(d: int = 4, n: int = 1000, seed: int = 1) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A linear model y = w·x (no bias) set to its OLS weights: w* is the exact empirical minimum."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=DTYPE)
    y = x @ torch.randn(d, 1, generator=g, dtype=DTYPE) + 0.1 * torch.randn(n, 1, generator=g, dtype=DTYPE)
    model = nn.Linear(d, 1, bias=False, dtype=DTYPE)
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    return model, x, y


def test_regular_linear_regression_gives_half_the_dimension():
    d = 4
    model, x, y = linear_regression_at_ols(d)
    # Curvature of nβ·ℓ_n is 2nβ = 2000: ε·2000/4 = 1% Euler bias, relaxation in
    # about 1/(ε nβ) = 50 steps; γ/(2nβ) = 0.05% localization bias.
    est = SGLDLearningCoefficient(
        epsilon=2e-5, gamma=1.0, nbeta=1000.0, num_chains=8, num_burnin=200, num_draws=1000, batch_size=100, seed=0
    ).fit(model, F.mse_loss, (x,), y)
    assert not est.failed_chains_.any()
    assert est.llc_sem_ < 0.1 * d / 2  # the check below is not vacuous
    assert_within_3se(est, d / 2)


def monomial_posterior_mean(nbeta: float, gamma: float, b: int) -> float:
    """E[nβ w1² w2^(2b)] under exp(−nβ w1² w2^(2b) − γ/2 ‖w‖²), by quadrature.

    Given w2, w1 is Gaussian with precision 2nβ w2^(2b) + γ, so the expectation
    reduces to one integral over w2 (the case a = 1 with E[x²] = 1).
    """
    w2 = np.linspace(0.0, 12.0 / math.sqrt(gamma), 400_001)
    s = nbeta * w2 ** (2 * b)
    weight = np.exp(-gamma * w2**2 / 2) / np.sqrt(2 * s + gamma)
    return float(np.trapezoid(weight * s / (2 * s + gamma), w2) / np.trapezoid(weight, w2))


def test_singular_monomial_model():
    a, b, n = 1, 2, 1000
    x = whitened_inputs(n, 1, seed=2)[:, 0]  # mean(x²) = 1 exactly
    y = torch.zeros(n, dtype=DTYPE)  # truth f = 0, so w* = 0 minimizes ℓ_n exactly
    # λ = 1/(2 max(a, b)) = 1/4. The estimate depends on nβ, γ, ε: at finite
    # nβ/γ³ the posterior mean is below λ (0.236 here, 0.242 at 10x nβ), a
    # smaller ε needs many more steps to spread along the flat w1 axis, and
    # ε ≳ 1e-2 diverges. nβ = 1e4, γ = 1, ε = 3e-4 reach both within the SE.
    settings = dict(epsilon=3e-4, gamma=1.0, nbeta=1e4)
    est = SGLDLearningCoefficient(
        **settings, num_chains=16, num_burnin=1000, num_draws=4000, batch_size=100, seed=0
    ).fit(Monomial(a, b), F.mse_loss, (x,), y)
    assert not est.failed_chains_.any()
    assert est.llc_sem_ < 0.1 * 0.25
    assert_within_3se(est, 1 / (2 * max(a, b)))
    assert_within_3se(est, monomial_posterior_mean(settings["nbeta"], settings["gamma"], b))


def test_monomial_quadrature_tends_to_the_rlct():
    # The quadrature reference itself: increasing in nβ, tending to 1/(2b).
    values = [monomial_posterior_mean(t, 1.0, 2) for t in (1e2, 1e4, 1e6, 1e8)]
    assert all(u < v for u, v in zip(values, values[1:]))
    assert 0.24 < values[-1] < 0.25
    # a regular direction only (b = 0): E = nβ/(2nβ + γ) -> 1/2
    assert monomial_posterior_mean(1e6, 1.0, 0) == pytest.approx(0.5, abs=1e-5)


class SquaredScalar(nn.Module):
    """f(x) = a² · x with one 0-dimensional parameter a, starting at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros((), dtype=DTYPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a**2 * x


def quartic_posterior_mean(nbeta: float, gamma: float) -> float:
    """E[nβ a⁴] under exp(−nβ a⁴ − γ/2 a²), by quadrature (1/4 exactly at γ = 0)."""
    a = np.linspace(0.0, 12.0 / nbeta**0.25, 400_001)
    weight = np.exp(-nbeta * a**4 - gamma * a**2 / 2)
    return float(np.trapezoid(weight * nbeta * a**4, a) / np.trapezoid(weight, a))


def test_a_zero_dimensional_parameter_gives_the_quartic_rlct():
    # y = a² x with truth a = 0: ℓ_n(a) = a⁴ mean(x²) = a⁴, so λ = 1/4
    # (one variable, K(a) = a⁴). A scalar nn.Parameter is held as a (C,)
    # tensor by the batched chains. nβ = 1e4 puts the posterior at a ≈ 0.1,
    # where the curvature 12 nβ a² ≈ 1.2e3 makes ε = 1e-4 a 6 % step.
    # Seeds 0-4 give z = +0.4, +2.0, +0.1, +1.6, +1.5 against the quadrature.
    x = whitened_inputs(1000, 1, seed=3)[:, 0]
    y = torch.zeros(1000, dtype=DTYPE)
    settings = dict(epsilon=1e-4, gamma=1.0, nbeta=1e4)
    est = SGLDLearningCoefficient(
        **settings, num_chains=16, num_burnin=200, num_draws=2000, batch_size=100, seed=0
    ).fit(SquaredScalar(), F.mse_loss, (x,), y)
    assert est.num_params_ == 1 and not est.failed_chains_.any()
    assert est.llc_sem_ < 0.1 * 0.25
    assert quartic_posterior_mean(1e4, 0.0) == pytest.approx(0.25, rel=1e-6)
    assert_within_3se(est, 0.25)
    assert_within_3se(est, quartic_posterior_mean(settings["nbeta"], settings["gamma"]))


def aoyagi_rlct(M: int, N: int, H: int, r: int) -> float:
    """RLCT of reduced-rank regression y = BAx, A: (H, M), B: (N, H), true rank r.

    Aoyagi & Watanabe (2005), Main Theorem.
    """
    if N + r <= M + H and M + r <= N + H and H + r <= M + N:
        s = 2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2
        return (s + (M + H + N + r) % 2) / 8
    if M + H < N + r:
        return (H * M - H * r + N * r) / 2
    if N + H < M + r:
        return (H * N - H * r + M * r) / 2
    return M * N / 2


def test_aoyagi_formula_on_regular_and_known_cases():
    # Full rank r = H <= min(M, N) is regular: dim of rank-H (N, M) matrices / 2.
    for M, N, H in [(3, 1, 1), (2, 2, 1), (4, 3, 2), (5, 5, 3), (6, 2, 2)]:
        assert aoyagi_rlct(M, N, H, H) == (H * (M + N) - H * H) / 2
    # More hidden units than inputs and outputs together: M·N/2, as for a plain matrix.
    assert aoyagi_rlct(2, 2, 5, 0) == 2.0
    assert aoyagi_rlct(3, 3, 2, 0) == 2.5
    assert aoyagi_rlct(2, 2, 2, 0) == 1.5
    # Rank r > 0 splits into the regular rank-r part plus a rank-0 problem on the complement.
    for M, N, H, r in [(3, 3, 2, 1), (4, 3, 3, 1), (5, 4, 3, 2)]:
        regular = r * (M + N - r) / 2
        assert aoyagi_rlct(M, N, H, r) == regular + aoyagi_rlct(M - r, N - r, H - r, 0)


def reduced_rank_at(M: int, N: int, H: int, singular_value: float) -> ReducedRank:
    """A reduced-rank model whose map BA is 0 (singular_value 0) or singular_value · e1 e1ᵀ (rank 1)."""
    model = ReducedRank(M, N, H)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.A.weight[0, 0] = math.sqrt(singular_value)
        model.B.weight[0, 0] = math.sqrt(singular_value)
    return model


# Rank 0 (true map 0): λ = 5/2 (d/2 = 6). By scaling w = u/√γ only t = nβ/γ²
# and ε' = εγ matter. At t = 100 the posterior mean is still well below λ
# (2.18 ± 0.05 at ε' = 3e-4) and ε' = 1e-3 lands near 2.43 only through
# discretization bias; t = 1000 with ε' = 1e-4 needs about 30 000 steps (about
# 40 s on one core).
# Rank 1 (singular value s = 0.1): λ = 7/2, the regular part (rank-1 3x3
# matrices: 5 dimensions, 5/2) plus a rank-0 problem with M = N = 2, H = 1 in
# the complement (λ = 1). The regular directions have curvature ≈ nβ·2s/N; s is
# chosen small so that ε times that stays ≪ 1 (s = 1 made SGLD overshoot:
# estimates of 6 to 9), while nβ·s ≫ γ keeps them in the asymptotic regime.
# Measured: s = 0.1, t = 1000, ε' = 1e-4: 3.46 ± 0.03 at 30 000 draws; at
# 10 000 draws 3.33 ± 0.09 (s = 0.05) and 3.31 ± 0.07 (s = 0.2, ε' = 3e-5).
@pytest.mark.parametrize("rank, singular_value, truth", [(0, 0.0, 2.5), (1, 0.1, 3.5)])
def test_reduced_rank_regression_matches_aoyagi(rank, singular_value, truth):
    M, N, H, n = 3, 3, 2, 1000  # M = N = 3 inputs/outputs, H = 2 hidden
    x = whitened_inputs(n, M, seed=3)
    model = reduced_rank_at(M, N, H, singular_value)
    with torch.no_grad():
        y = model(x)  # w* is an exact minimum: zero residual
    gamma = 10.0
    est = SGLDLearningCoefficient(
        epsilon=1e-4 / gamma, gamma=gamma, nbeta=1e3 * gamma**2, num_chains=8,
        num_burnin=7500, num_draws=30000, batch_size=100, seed=0,
    ).fit(model, F.mse_loss, (x,), y)
    assert not est.failed_chains_.any()
    assert aoyagi_rlct(M, N, H, rank) == truth
    assert_within_3se(est, aoyagi_rlct(M, N, H, rank))


# ------------------------------------------------------------- invariants


def small_regression(seed: int = 0, n: int = 64) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8, dtype=DTYPE), nn.Tanh(), nn.Linear(8, 1, dtype=DTYPE))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=DTYPE))
    x = torch.randn(n, 3, generator=g, dtype=DTYPE)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    return model, x, y


def tiny_transformer() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)  # parameter init of this test model only
    model = InContextRegressionTransformer(ModelConfig(D=2, K=4, n_layer=1, d_model=8, n_head=2, d_mlp=16)).to(DTYPE)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, 2, generator=g, dtype=DTYPE)
    y = torch.randn(32, 4, generator=g, dtype=DTYPE)
    return model, (x, y), y


SMALL = dict(epsilon=1e-3, gamma=100.0, nbeta=10.0, num_chains=3, num_burnin=4, num_draws=5, batch_size=8, seed=7)


def test_fitted_attribute_shapes_and_types():
    model, x, y = small_regression()
    est = SGLDLearningCoefficient(**SMALL, num_samples=64)
    assert est.fit(model, F.mse_loss, (x,), y) is est
    C = SMALL["num_chains"]
    assert est.llc_per_chain_.shape == (C,) and est.llc_per_chain_.dtype == np.float64
    assert est.loss_trace_.shape == (C, SMALL["num_burnin"] + SMALL["num_draws"])
    assert est.failed_chains_.shape == (C,) and est.failed_chains_.dtype == bool
    assert isinstance(est.llc_mean_, float) and isinstance(est.llc_std_, float) and isinstance(est.llc_sem_, float)
    assert est.llc_mean_ == pytest.approx(est.llc_per_chain_.mean())
    assert est.llc_sem_ == pytest.approx(est.llc_per_chain_.std(ddof=1) / math.sqrt(C))
    expected = SMALL["nbeta"] * (est.loss_trace_[:, SMALL["num_burnin"] :].mean(axis=1) - est.init_loss_)
    np.testing.assert_allclose(est.llc_per_chain_, expected)
    assert est.init_loss_ == pytest.approx(float(F.mse_loss(model(x), y).detach()))
    assert est.num_params_ == sum(p.numel() for p in model.parameters())
    assert est.elapsed_s_ > 0 and est.num_samples == 64


def test_init_loss_is_computed_in_chunks():
    model, x, y = small_regression(n=50)
    full = float(F.mse_loss(model(x), y).detach())
    est = SGLDLearningCoefficient(**SMALL, eval_batch_size=7).fit(model, F.mse_loss, (x,), y)
    assert est.init_loss_ == pytest.approx(full, rel=1e-12)


def test_same_seed_same_result_and_other_seed_differs():
    model, x, y = small_regression()
    first = SGLDLearningCoefficient(**SMALL).fit(model, F.mse_loss, (x,), y)
    again = SGLDLearningCoefficient(**SMALL).fit(model, F.mse_loss, (x,), y)
    np.testing.assert_array_equal(first.loss_trace_, again.loss_trace_)
    assert first.llc_mean_ == again.llc_mean_
    other = SGLDLearningCoefficient(**{**SMALL, "seed": 8}).fit(model, F.mse_loss, (x,), y)
    assert not np.array_equal(first.loss_trace_, other.loss_trace_)


def test_a_chain_does_not_depend_on_how_many_chains_run():
    model, x, y = small_regression()
    three = SGLDLearningCoefficient(**SMALL).fit(model, F.mse_loss, (x,), y)
    five = SGLDLearningCoefficient(**{**SMALL, "num_chains": 5}).fit(model, F.mse_loss, (x,), y)
    np.testing.assert_allclose(five.loss_trace_[:3], three.loss_trace_, rtol=1e-12)
    assert chain_seeds(7, 5)[:3] == chain_seeds(7, 3)
    assert len(set(chain_seeds(7, 5))) == 5


def test_estimates_fitted_together_equal_each_fitted_alone():
    """Stacking checkpoints' chains into one computation changes nothing but the speed."""
    models = []
    for scale in (1.0, 0.7, 1.3):  # three "checkpoints" of one architecture
        model, (x, y), _ = tiny_transformer()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
        models.append(model)
    settings = [{**SMALL, "seed": 7}, {**SMALL, "seed": 8, "num_chains": 2}, {**SMALL, "seed": 9}]
    together = fit_together([SGLDLearningCoefficient(**s) for s in settings], models, F.mse_loss, (x, y), y)
    for est, s, model in zip(together, settings, models):
        alone = SGLDLearningCoefficient(**s).fit(model, F.mse_loss, (x, y), y)
        np.testing.assert_allclose(est.loss_trace_, alone.loss_trace_, rtol=1e-10)
        np.testing.assert_allclose(est.llc_per_chain_, alone.llc_per_chain_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(est.mala_acceptance_, alone.mala_acceptance_, rtol=1e-8)
        assert est.init_loss_ == pytest.approx(alone.init_loss_, rel=1e-12)
        np.testing.assert_array_equal(est.failed_chains_, alone.failed_chains_)
    assert len({est.llc_mean_ for est in together}) == 3  # each around its own checkpoint


def test_estimates_fitted_together_must_share_the_chain_settings():
    model, (x, y), _ = tiny_transformer()
    with pytest.raises(ValueError, match="epsilon"):
        fit_together([SGLDLearningCoefficient(**SMALL), SGLDLearningCoefficient(**{**SMALL, "epsilon": 2e-3})],
                     [model, copy.deepcopy(model)], F.mse_loss, (x, y), y)
    with pytest.raises(ValueError, match="one model per estimator"):
        fit_together([SGLDLearningCoefficient(**SMALL)], [model, model], F.mse_loss, (x, y), y)
    other = InContextRegressionTransformer(ModelConfig(D=2, K=4, n_layer=1, d_model=8, n_head=2, d_mlp=8)).to(DTYPE)
    with pytest.raises(ValueError, match="same trainable parameters"):
        fit_together([SGLDLearningCoefficient(**SMALL), SGLDLearningCoefficient(**SMALL)], [model, other],
                     F.mse_loss, (x, y), y)


def test_model_is_left_untouched():
    model, (x, y), _ = tiny_transformer()
    before = copy.deepcopy(model.state_dict())
    model.eval()
    SGLDLearningCoefficient(**SMALL).fit(model, F.mse_loss, (x, y), y)
    assert not model.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def reference_chain(
    model: nn.Module, loss_fn, inputs: tuple, targets: torch.Tensor, *, chain_seed: int, epsilon: float,
    gamma: float, nbeta: float, num_burnin: int, num_draws: int, steps_between_draws: int, batch_size: int,
) -> tuple[np.ndarray, float]:
    """One chain with plain autograd and a Python loop: the slow reference.

    Per step, the chain's generator gives the minibatch indices, then the
    noise for all parameters (in ``named_parameters`` order), as the
    estimator documents. Returns the loss trace and the mean MALA acceptance
    probability of the post-burn-in transitions, computed from the definition
    ``min(1, exp(U(w) − U(w') + log q(w|w') − log q(w'|w)))`` with
    ``q(a|b) = N(a; b − ε/2 ∇U(b), ε)`` and each step's own minibatch in ``U``.
    """
    gen = torch.Generator().manual_seed(chain_seed)
    chain = copy.deepcopy(model)
    params = list(chain.parameters())
    w_star = [p.detach().clone() for p in params]
    n = targets.shape[0]
    trace, states = [], []  # states: (w flat, ∇U flat, U) per step, before its update
    for step in range(num_burnin + num_draws * steps_between_draws):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        noise = torch.randn(sum(p.numel() for p in params), generator=gen, dtype=DTYPE)
        loss = loss_fn(chain(*(t[idx] for t in inputs)), targets[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            w = torch.cat([p.reshape(-1) for p in params]).clone()
            w0 = torch.cat([p0.reshape(-1) for p0 in w_star])
            grad_u = nbeta * torch.cat([g.reshape(-1) for g in grads]) + gamma * (w - w0)
            states.append((w, grad_u, float(nbeta * loss + gamma / 2 * ((w - w0) ** 2).sum())))
            offset = 0
            for p, g, p0 in zip(params, grads, w_star):
                z = noise[offset : offset + p.numel()].view_as(p)
                offset += p.numel()
                p.add_(-epsilon / 2 * (nbeta * g + gamma * (p - p0)) + math.sqrt(epsilon) * z)
        if step < num_burnin or (step + 1 - num_burnin) % steps_between_draws == 0:
            trace.append(float(loss.detach()))

    def log_q(a, b, grad_b):
        return float(-((a - b + epsilon / 2 * grad_b) ** 2).sum() / (2 * epsilon))

    accept = []
    for (w, g, u), (w_next, g_next, u_next) in zip(states[num_burnin:], states[num_burnin + 1 :]):
        log_alpha = u - u_next + log_q(w, w_next, g_next) - log_q(w_next, w, g)
        accept.append(min(1.0, math.exp(min(log_alpha, 0.0))))
    return np.array(trace), float(np.mean(accept)) if accept else math.nan


class _NoStackedForward(nn.Module):
    """The wrapped model without ``forward_stacked``: the estimator falls back to vmap."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.inner(*inputs)


@pytest.mark.parametrize("which", ["mlp", "transformer", "transformer_vmap"])
def test_batched_chains_match_one_chain_at_a_time(which):
    """Both batched paths (the transformer's own stacked forward, and vmap for any module) against a plain loop."""
    if which == "mlp":
        model, x, y = small_regression()
        inputs, targets = (x,), y
    else:
        model, inputs, targets = tiny_transformer()
        assert hasattr(model, "forward_stacked")
        if which == "transformer_vmap":
            model = _NoStackedForward(model)
    settings = dict(SMALL, steps_between_draws=2)
    est = SGLDLearningCoefficient(**settings).fit(model, F.mse_loss, inputs, targets)
    for c, s in enumerate(chain_seeds(settings["seed"], settings["num_chains"])):
        ref, acceptance = reference_chain(
            model, F.mse_loss, inputs, targets, chain_seed=s,
            **{k: settings[k] for k in ("epsilon", "gamma", "nbeta", "num_burnin", "num_draws", "steps_between_draws", "batch_size")},
        )
        np.testing.assert_allclose(est.loss_trace_[c], ref, rtol=1e-9, err_msg=f"chain {c}")
        assert est.mala_acceptance_[c] == pytest.approx(acceptance, rel=1e-6), f"chain {c}"
    assert ((est.mala_acceptance_ > 0) & (est.mala_acceptance_ <= 1)).all()


def test_mala_acceptance_falls_as_epsilon_grows():
    # A linear model at its OLS weights: at a small ε the Langevin proposal is nearly exact and
    # the acceptance is near 1 (below it only by the minibatch noise of nβ ℓ_m, which grows with
    # nβ: 0.97 at nβ = 100, 0.81 at nβ = 1000 measured); larger ε are rejected more often.
    model, x, y = linear_regression_at_ols()
    rates = []
    for eps in (1e-6, 1e-4, 3e-3):
        est = SGLDLearningCoefficient(epsilon=eps, gamma=1.0, nbeta=100.0, num_chains=4, num_burnin=50,
                                      num_draws=200, batch_size=1000, seed=0).fit(model, F.mse_loss, (x,), y)
        rates.append(float(np.mean(est.mala_acceptance_)))
    assert rates[0] > 0.95 and rates[0] > rates[1] > rates[2]


def test_diverging_chains_are_reported_and_excluded():
    n = 200
    x = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    y = torch.zeros(n, dtype=DTYPE)
    # ε = 1e-2 is too large for this quartic potential: some chains blow up.
    est = SGLDLearningCoefficient(
        epsilon=1e-2, gamma=1.0, nbeta=1e3, num_chains=16, num_burnin=100, num_draws=400, batch_size=20, seed=0
    ).fit(Monomial(1, 2), F.mse_loss, (x,), y)
    failed = est.failed_chains_
    assert 0 < failed.sum() < 16
    assert np.isnan(est.llc_per_chain_[failed]).all() and np.isfinite(est.llc_per_chain_[~failed]).all()
    assert (~np.isfinite(est.loss_trace_[failed])).any(axis=1).all()
    assert est.llc_mean_ == pytest.approx(est.llc_per_chain_[~failed].mean())
    assert est.llc_sem_ == pytest.approx(est.llc_per_chain_[~failed].std(ddof=1) / math.sqrt((~failed).sum()))


def test_all_chains_diverging_raises_with_the_settings():
    model, x, y = small_regression()
    with pytest.raises(RuntimeError, match=r"epsilon=1000.*smaller epsilon"):
        SGLDLearningCoefficient(**{**SMALL, "epsilon": 1e3, "num_draws": 200}).fit(model, F.mse_loss, (x,), y)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epsilon": 0.0}, "epsilon=0.0 must be"),
        ({"gamma": -1.0}, "gamma=-1.0 must be"),
        ({"nbeta": float("nan")}, "nbeta=nan must be"),
        ({"num_chains": 0}, "num_chains=0 must be"),
        ({"num_draws": 2.5}, "num_draws=2.5 must be"),
        ({"batch_size": 65}, "batch_size=65 must be .* n=64"),
    ],
)
def test_bad_settings_name_the_value(change, message):
    model, x, y = small_regression()
    with pytest.raises(ValueError, match=message):
        SGLDLearningCoefficient(**{**SMALL, **change}).fit(model, F.mse_loss, (x,), y)


def test_mismatched_sample_dims_and_nonfinite_loss_are_rejected():
    model, x, y = small_regression()
    with pytest.raises(ValueError, match="inputs\\[0\\] has 63 samples"):
        SGLDLearningCoefficient(**SMALL).fit(model, F.mse_loss, (x[:-1],), y)
    y_bad = y.clone()
    y_bad[3] = float("nan")
    with pytest.raises(ValueError, match="finite loss at w"):
        SGLDLearningCoefficient(**SMALL).fit(model, F.mse_loss, (x,), y_bad)


def test_estimate_llc_builds_from_a_settings_mapping():
    model, x, y = small_regression()
    est = estimate_llc(model, F.mse_loss, (x,), y, SMALL)
    direct = SGLDLearningCoefficient(**SMALL).fit(model, F.mse_loss, (x,), y)
    np.testing.assert_array_equal(est.loss_trace_, direct.loss_trace_)
    with pytest.raises(ValueError, match=r"unknown LLC setting\(s\) \['step_size'\]"):
        estimate_llc(model, F.mse_loss, (x,), y, {**SMALL, "step_size": 1.0})


def test_agrees_with_devinterp_on_linear_regression():
    pytest.importorskip("devinterp")
    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary
    from torch.utils.data import DataLoader, TensorDataset

    model, x, y = linear_regression_at_ols()
    settings = dict(epsilon=5e-5, gamma=1.0, nbeta=1000.0, num_chains=6, num_burnin=100, num_draws=400, batch_size=100)
    ours = SGLDLearningCoefficient(**settings, seed=0).fit(model, F.mse_loss, (x,), y)

    loader = DataLoader(TensorDataset(x, y), batch_size=100, shuffle=True, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # devinterp's deprecation and settings warnings
        result = estimate_learning_coeff_with_summary(
            copy.deepcopy(model), loader, evaluate=lambda m, batch: F.mse_loss(m(batch[0]), batch[1]),
            sampling_method=SGLD,
            optimizer_kwargs=dict(lr=settings["epsilon"], localization=settings["gamma"], nbeta=settings["nbeta"]),
            num_chains=settings["num_chains"], num_draws=settings["num_draws"],
            num_burnin_steps=settings["num_burnin"], init_loss=ours.init_loss_, seed=0, verbose=False,
        )
    theirs = np.array([result[f"llc-chain/{i}"] for i in range(settings["num_chains"])])
    combined_se = math.hypot(ours.llc_sem_, theirs.std(ddof=1) / math.sqrt(len(theirs)))
    assert abs(ours.llc_mean_ - theirs.mean()) < 3 * combined_se


def test_non_scalar_loss_is_rejected():
    model, x, y = small_regression()
    with pytest.raises(ValueError, match="loss_fn must return a scalar"):
        SGLDLearningCoefficient(**SMALL).fit(model, lambda out, t: (out - t) ** 2, (x,), y)
