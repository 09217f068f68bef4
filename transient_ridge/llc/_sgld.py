"""Local learning coefficient (LLC) by stochastic-gradient Langevin dynamics.

The LLC at a local minimum ``w*`` of the empirical loss ``ℓ_n`` is estimated
as (Lau et al. 2023, *Quantifying degeneracy in singular models via the
learning coefficient*, arXiv 2308.12108, the estimator λ̂ and its SGLD
sampler; Hoogland et al. 2024, arXiv 2402.02364, who track it over training)::

    λ̂(w*) = nβ (E_w[ℓ_n(w)] − ℓ_n(w*)),

the expectation taken over the localized tempered posterior::

    p(w) ∝ exp(−nβ ℓ_n(w) − γ/2 ‖w − w*‖²).

It is sampled by SGLD (Welling & Teh 2011, with the localizing term of Lau et
al. 2023), with ``ℓ_m`` the mean loss on a fresh minibatch of ``m`` samples::

    Δw = −ε/2 (nβ ∇ℓ_m(w) + γ (w − w*)) + N(0, ε I).

As in devinterp, ``E_w[ℓ_n]`` is estimated by the average of the minibatch
losses ``ℓ_m`` at the post-burn-in draws (unbiased, since each minibatch is
drawn independently of the current weights), and ``ℓ_n(w*)`` is the mean loss
over all ``n`` samples.

All chains run as one batched computation: each parameter of shape ``S`` is
held as one ``(C, *S)`` tensor (``C`` chains), the model is evaluated with
``torch.func.functional_call`` under ``torch.func.vmap`` over the chain dim
(or, for a model with a ``forward_stacked(params, *inputs)`` method such as the
package transformer, by that method on the stacked weights directly), one
backward pass through the batched graph gives every chain's gradient at
once, and the update is a handful of ``torch._foreach_*`` calls over all
parameters. Chain ``c`` draws its minibatch indices and its
noise from its own ``torch.Generator`` seeded by :func:`chain_seeds`, so a
chain is a pure function of ``(seed, c)`` and the result does not depend on
how many other chains run beside it.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["SGLDLearningCoefficient", "chain_seeds", "estimate_llc", "fit_together", "mala_log_acceptance"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# How often (in SGLD steps) to look whether every chain has already diverged,
# so that a hopeless run stops early. Each look costs one host sync.
_DIVERGENCE_CHECK_EVERY = 50


def chain_seeds(seed: int, num_chains: int) -> list[int]:
    """Seeds of the per-chain ``torch.Generator``\\ s.

    Chain ``c`` gets ``SeedSequence(seed, spawn_key=(c,))``, the ``c``-th child
    of ``numpy.random.SeedSequence(seed)``: independent streams, and chain
    ``c``'s seed does not depend on ``num_chains``.

    Returns:
        ``num_chains`` integers in ``[0, 2**63)``.
    """
    return [
        int(np.random.SeedSequence(seed, spawn_key=(c,)).generate_state(1, np.uint64)[0] >> np.uint64(1))
        for c in range(num_chains)
    ]


class SGLDLearningCoefficient:
    """SGLD estimator of the local learning coefficient, all chains batched.

    Args:
        epsilon: SGLD step size ``ε`` (> 0). The noise has variance ``ε``.
        gamma: localization strength ``γ`` (≥ 0).
        nbeta: the inverse temperature times the sample size, ``nβ`` (> 0).
            Lau et al. recommend ``β = 1/log n``; the value is taken as given.
        num_chains: number of independent chains ``C`` (≥ 1).
        num_burnin: SGLD steps before the first draw (≥ 0).
        num_draws: draws per chain used in the estimate (≥ 1).
        steps_between_draws: SGLD steps per draw after burn-in (≥ 1); the
            draw is the loss at the last of them, as in devinterp.
        batch_size: minibatch size ``m`` (1 ≤ m ≤ n); indices are drawn with
            replacement, independently per chain and step.
        seed: integer seed; every random number comes from it.
        num_samples: the ``n`` in ``nβ``, recorded for bookkeeping only
            (``None`` if not known).
        eval_batch_size: samples per chunk when computing ``ℓ_n(w*)``.
        raise_on_failure: if every chain diverges, raise ``RuntimeError``,
            and if ``ℓ_n(w*)`` is not finite, ``ValueError`` (default); with
            ``False`` the fit returns with NaN estimates, every chain marked
            failed, the reason in ``failure_`` and every other attribute set,
            so a pipeline can store the failure.

    Attributes (set by :meth:`fit`):
        llc_mean_: mean of ``llc_per_chain_`` over healthy chains.
        llc_std_: standard deviation (ddof=1) over healthy chains (NaN if < 2).
        llc_sem_: ``llc_std_ / sqrt(#healthy chains)``.
        llc_per_chain_: ``(C,)`` float64, ``nβ (mean_draws ℓ_m − ℓ_n(w*))``;
            NaN for failed chains.
        loss_trace_: ``(C, num_burnin + num_draws)`` float64, the minibatch
            loss at every burn-in step and at every draw (the loss at the
            weights *before* that step's update); NaN after an early stop.
        init_loss_: ``ℓ_n(w*)``, mean loss over all ``n`` samples.
        failed_chains_: ``(C,)`` bool, chains whose loss or weights became
            NaN/inf; they are excluded from the mean.
        chain_seeds_: the per-chain generator seeds (see :func:`chain_seeds`).
        num_params_: number of sampled scalars ``P``.
        num_steps_: SGLD steps per chain, ``num_burnin + num_draws * steps_between_draws``.
        mala_acceptance_: ``(C,)`` float64, per chain the mean over the post-burn-in
            SGLD transitions of the Metropolis-adjusted Langevin (MALA) acceptance
            probability (see :func:`mala_log_acceptance`; devinterp's health signal,
            ≈ 0.9 counted as healthy there); NaN for failed chains or without two
            post-burn-in steps.
        failure_: ``""``, or why the estimate failed (every chain diverged, or
            ``ℓ_n(w*)`` not finite).
        elapsed_s_: wall time of :meth:`fit` in seconds.
    """

    def __init__(
        self,
        *,
        epsilon: float,
        gamma: float,
        nbeta: float,
        num_chains: int = 8,
        num_burnin: int = 100,
        num_draws: int = 200,
        steps_between_draws: int = 1,
        batch_size: int = 64,
        seed: int = 0,
        num_samples: int | None = None,
        eval_batch_size: int = 1024,
        raise_on_failure: bool = True,
    ) -> None:
        self.epsilon = epsilon
        self.gamma = gamma
        self.nbeta = nbeta
        self.num_chains = num_chains
        self.num_burnin = num_burnin
        self.num_draws = num_draws
        self.steps_between_draws = steps_between_draws
        self.batch_size = batch_size
        self.seed = seed
        self.num_samples = num_samples
        self.eval_batch_size = eval_batch_size
        self.raise_on_failure = raise_on_failure

    # ------------------------------------------------------------------ checks

    def get_params(self) -> dict[str, object]:
        """The constructor arguments, as in scikit-learn."""
        return {
            "epsilon": self.epsilon,
            "gamma": self.gamma,
            "nbeta": self.nbeta,
            "num_chains": self.num_chains,
            "num_burnin": self.num_burnin,
            "num_draws": self.num_draws,
            "steps_between_draws": self.steps_between_draws,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "eval_batch_size": self.eval_batch_size,
            "raise_on_failure": self.raise_on_failure,
        }

    def _validate(self, n: int) -> None:
        def positive(name: str, value: float) -> None:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a finite number > 0")

        positive("epsilon", self.epsilon)
        positive("nbeta", self.nbeta)
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma={self.gamma!r} must be a finite number >= 0")
        for name, low in (("num_chains", 1), ("num_burnin", 0), ("num_draws", 1), ("steps_between_draws", 1), ("eval_batch_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
        if not isinstance(self.batch_size, (int, np.integer)) or not 1 <= self.batch_size <= n:
            raise ValueError(
                f"batch_size={self.batch_size!r} must be an integer between 1 and the number of samples n={n}; "
                "pass more samples or a smaller batch_size"
            )
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} must be an integer >= 0")

    # --------------------------------------------------------------------- fit

    def fit(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: Sequence[torch.Tensor],
        targets: torch.Tensor,
    ) -> SGLDLearningCoefficient:
        """Sample around the model's current weights ``w*`` and estimate the LLC.

        Args:
            model: called as ``model(*inputs)``; its trainable parameters are
                the sampled ``w`` (frozen ones and buffers stay fixed). It is
                not modified. It is evaluated in its current train/eval mode;
                put it in ``eval()`` if it has dropout.
            loss_fn: ``loss_fn(output, targets) -> scalar``, the *mean* loss
                over the samples of a batch (e.g. ``F.mse_loss``).
            inputs: tuple of tensors, each ``(n, ...)``; floating ones are cast
                to the parameters' dtype, all moved to their device.
            targets: ``(n, ...)``.

        Returns:
            ``self``, with the fitted attributes listed in the class docstring.
        """
        fit_together([self], [model], loss_fn, inputs, targets)
        return self

    def _set_failed(
        self, reason: str, seeds: list[int], num_params: int, elapsed_s: float
    ) -> SGLDLearningCoefficient:
        """Every fitted attribute of an estimate that could not be made (NaN numbers, every chain failed)."""
        C = int(self.num_chains)
        burnin, draws = int(self.num_burnin), int(self.num_draws)
        self.llc_per_chain_ = np.full(C, np.nan)
        self.llc_mean_ = self.llc_std_ = self.llc_sem_ = float("nan")
        self.loss_trace_ = np.full((C, burnin + draws), np.nan)
        self.failed_chains_ = np.ones(C, dtype=bool)
        self.mala_acceptance_ = np.full(C, np.nan)
        self.failure_ = reason
        self.chain_seeds_ = seeds
        self.num_params_ = num_params
        self.num_steps_ = burnin + draws * int(self.steps_between_draws)
        self.elapsed_s_ = elapsed_s
        return self

    def _set_fitted(
        self,
        step_losses: np.ndarray,
        log_accept: np.ndarray,
        weights_finite: np.ndarray,
        init_loss: float,
        seeds: list[int],
        num_params: int,
        elapsed_s: float,
    ) -> SGLDLearningCoefficient:
        """The fitted attributes from this estimate's rows of the chains' record.

        Args:
            step_losses: ``(num_steps, C)`` minibatch loss at every SGLD step (NaN after an early stop).
            log_accept: ``(num_steps - num_burnin - 1, C)`` MALA log acceptance of the post-burn-in transitions.
            weights_finite: ``(C,)`` whether each chain's final weights are finite.
        """
        C = int(self.num_chains)
        burnin, draws, every = int(self.num_burnin), int(self.num_draws), int(self.steps_between_draws)
        nbeta = float(self.nbeta)
        # Burn-in: every step. Draws: the last step of each group of `every`.
        trace_np = np.concatenate((step_losses[:burnin], step_losses[burnin + every - 1 :: every])).T  # (C, b + d)
        failed = ~np.isfinite(trace_np).all(axis=1) | ~weights_finite
        healthy = ~failed
        self.failure_ = "" if healthy.any() else (
            f"all {C} SGLD chains diverged (loss or weights became NaN/inf) with epsilon={float(self.epsilon):g}, "
            f"gamma={float(self.gamma):g}, nbeta={nbeta:g}, batch_size={int(self.batch_size)}"
        )
        if self.failure_ and self.raise_on_failure:
            raise RuntimeError(f"{self.failure_}; use a smaller epsilon (or a larger gamma)")
        acceptance = np.exp(np.minimum(log_accept, 0.0))
        self.mala_acceptance_ = np.full(C, np.nan)
        if acceptance.shape[0]:
            self.mala_acceptance_[healthy] = acceptance[:, healthy].mean(axis=0)
        per_chain = np.full(C, np.nan)
        per_chain[healthy] = nbeta * (trace_np[healthy, burnin:].mean(axis=1) - init_loss)
        k = int(healthy.sum())
        good = per_chain[healthy]
        self.init_loss_ = init_loss
        self.llc_per_chain_ = per_chain
        self.llc_mean_ = float(good.mean()) if k else float("nan")
        self.llc_std_ = float(good.std(ddof=1)) if k > 1 else float("nan")
        self.llc_sem_ = self.llc_std_ / math.sqrt(k) if k > 1 else float("nan")
        self.loss_trace_ = trace_np
        self.failed_chains_ = failed
        self.chain_seeds_ = seeds
        self.num_params_ = num_params
        self.num_steps_ = burnin + draws * every
        self.elapsed_s_ = elapsed_s
        return self


# The settings that must be equal for estimates to share one batched computation.
_SHARED_SETTINGS = ("epsilon", "gamma", "nbeta", "num_burnin", "num_draws", "steps_between_draws", "batch_size")


def fit_together(
    estimators: Sequence[SGLDLearningCoefficient],
    models: Sequence[nn.Module],
    loss_fn: LossFn,
    inputs: Sequence[torch.Tensor],
    targets: torch.Tensor,
) -> list[SGLDLearningCoefficient]:
    """Fit several estimates on the same data as one batched computation: estimator ``k`` around ``models[k]``.

    Every chain of every estimate is one row of one stacked computation, so a step
    does one forward and one backward pass for all of them (on a CPU, fewer and
    larger matrix products: 1.1-1.2x per estimate for three mini checkpoints at 4
    chains each). Chains keep their own generators seeded by each estimator's
    ``seed``, so estimate ``k`` gets the numbers :meth:`SGLDLearningCoefficient.fit`
    gives alone, up to float rounding (tests/test_llc.py).

    Args:
        estimators: the estimates to make; they must share ``epsilon``, ``gamma``, ``nbeta``,
            ``num_burnin``, ``num_draws``, ``steps_between_draws`` and ``batch_size``
            (``num_chains`` and ``seed`` may differ).
        models: one per estimator, with the same trainable parameter names and shapes, and
            equal frozen parameters and buffers; each is left unmodified.
        loss_fn, inputs, targets: as in :meth:`SGLDLearningCoefficient.fit`, shared by all.

    Returns:
        ``estimators``, each fitted (its ``elapsed_s_`` is its share of the joint wall time).
    """
    start = time.perf_counter()
    estimators, models = list(estimators), list(models)
    if len(estimators) != len(models) or not estimators:
        raise ValueError(f"need one model per estimator, got {len(estimators)} estimators and {len(models)} models")
    first = estimators[0]
    for est in estimators[1:]:
        differ = [key for key in _SHARED_SETTINGS if getattr(est, key) != getattr(first, key)]
        if differ:
            raise ValueError(f"estimates fitted together must share {list(_SHARED_SETTINGS)}; these differ: {differ}")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    n = int(targets.shape[0])
    for i, t in enumerate(inputs):
        if t.shape[0] != n:
            raise ValueError(
                f"inputs[{i}] has {t.shape[0]} samples along dim 0 but targets has n={n}; "
                "every input and the targets must share the sample dim 0"
            )
    for est in estimators:
        est._validate(n)

    named_per_model = [[(name, p) for name, p in model.named_parameters() if p.requires_grad] for model in models]
    named = named_per_model[0]
    if not named:
        raise ValueError("model has no trainable parameters (requires_grad=True) to sample")
    device, dtype = named[0][1].device, named[0][1].dtype
    if any(p.device != device or p.dtype != dtype for _, p in named):
        raise ValueError("all trainable parameters must share one device and dtype")
    layout = [(name, p.shape, p.device, p.dtype) for name, p in named]
    if any([(name, p.shape, p.device, p.dtype) for name, p in other] != layout for other in named_per_model[1:]):
        raise ValueError("models fitted together must have the same trainable parameters (names, shapes, device, dtype)")
    model = models[0]
    fixed = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    fixed.update(model.named_buffers())
    for other in models[1:]:
        theirs = {name: p.detach() for name, p in other.named_parameters() if not p.requires_grad}
        theirs.update(other.named_buffers())
        if theirs.keys() != fixed.keys() or any(not torch.equal(theirs[k], fixed[k]) for k in fixed):
            raise ValueError("models fitted together must have equal frozen parameters and buffers")

    def to_device(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)

    inputs = tuple(to_device(t) for t in inputs)
    targets = to_device(targets)
    names = [name for name, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    P = sum(sizes)

    # ℓ_n(w*) of each estimate; one that is not finite is recorded as failed and runs no chains.
    running: list[tuple[SGLDLearningCoefficient, nn.Module, float, list[int]]] = []
    failed_early: list[tuple[SGLDLearningCoefficient, str, list[int]]] = []  # (estimate, reason, seeds)
    for est, est_model in zip(estimators, models):
        seeds = chain_seeds(int(est.seed), int(est.num_chains))
        with torch.no_grad():
            init_loss = _full_loss(est_model, loss_fn, inputs, targets, int(est.eval_batch_size))
        if math.isfinite(init_loss):
            running.append((est, est_model, init_loss, seeds))
            continue
        reason = (
            f"the loss at the model's weights over all n={n} samples is {init_loss}; "
            "the LLC needs a finite loss at w* (check the checkpoint's weights and the inputs and targets "
            "for NaN/inf)"
        )
        if est.raise_on_failure:
            raise ValueError(reason)
        est.init_loss_ = init_loss
        failed_early.append((est, reason, seeds))

    rows = _run_chains(
        [(est_model, int(est.num_chains), seeds) for est, est_model, _, seeds in running],
        names, shapes, sizes, fixed, model, loss_fn, inputs, targets, first,
    ) if running else None
    share = (time.perf_counter() - start) / len(estimators)
    for est, reason, seeds in failed_early:
        est._set_failed(reason, seeds, P, share)
    offset = 0
    for est, _, init_loss, seeds in running:
        C = int(est.num_chains)
        step_losses, log_accept, weights_finite = (a[..., offset : offset + C] for a in rows)
        est._set_fitted(step_losses, log_accept, weights_finite, init_loss, seeds, P, share)
        offset += C
    return estimators


def _run_chains(
    starts: Sequence[tuple[nn.Module, int, list[int]]],
    names: list[str],
    shapes: list[torch.Size],
    sizes: list[int],
    fixed: dict[str, torch.Tensor],
    model: nn.Module,
    loss_fn: LossFn,
    inputs: tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    settings: SGLDLearningCoefficient,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run every chain of every estimate as one batched SGLD computation.

    Args:
        starts: per estimate, its model (``w*``), its number of chains and their seeds.
        settings: the estimator whose shared settings (ε, γ, nβ, chain length, batch) are used.

    Returns:
        ``step_losses (num_steps, C)``, ``log_accept (num_steps - num_burnin - 1, C)`` and
        ``weights_finite (C,)`` as float64 / bool arrays, ``C`` the chains of all estimates
        in order.
    """
    n = int(targets.shape[0])
    device, dtype = targets.device, targets.dtype
    m = int(settings.batch_size)
    eps, gamma, nbeta = float(settings.epsilon), float(settings.gamma), float(settings.nbeta)
    burnin, draws, every = int(settings.num_burnin), int(settings.num_draws), int(settings.steps_between_draws)
    num_steps = burnin + draws * every
    seeds = [s for _, _, chain_seeds_k in starts for s in chain_seeds_k]
    C, P = len(seeds), sum(sizes)
    with torch.no_grad():
        # The chains' weights: one (C, P) leaf, row c = chain c's parameters in
        # `names` order; each parameter is a (C, *shape) view of it, so the
        # update is a few whole-buffer operations instead of one per parameter.
        w_star = torch.cat([
            torch.cat([p.detach().reshape(-1) for name, p in est_model.named_parameters() if name in names]
                      ).expand(chains, P)
            for est_model, chains, _ in starts
        ]).clone()  # w*, stacked
        theta = w_star.clone().requires_grad_(True)

    def parameter_views(flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: v.view(C, *shape) for name, v, shape in zip(names, flat.split(sizes, dim=1), shapes)}

    def chain_loss(params: dict[str, torch.Tensor], batch_inputs: tuple, batch_targets: torch.Tensor) -> torch.Tensor:
        # One chain's minibatch loss ℓ_m(w): params hold its weights, the
        # batch tensors its (m, ...) minibatch.
        return loss_fn(functional_call(model, {**params, **fixed}, batch_inputs), batch_targets)

    batched_loss = vmap(chain_loss, in_dims=(0, 0, 0))  # chain dim 0 everywhere -> (C,)
    stacked = getattr(model, "forward_stacked", None) if not fixed else None
    per_chain_loss = vmap(loss_fn, in_dims=(0, 0))  # (C, m, ...) outputs and targets -> (C,)

    def chains_loss(params: dict[str, torch.Tensor], batch_inputs: tuple, batch_targets: torch.Tensor) -> torch.Tensor:
        # Every chain's minibatch loss, (C,). A model that evaluates stacked weights
        # itself (the package transformer) skips vmap's batching rules: faster on a CPU.
        if stacked is not None:
            return per_chain_loss(stacked(params, *batch_inputs), batch_targets)
        # The fused CPU attention kernels have no vmap batching rule; the
        # math kernel is made of batchable ops.
        with sdpa_kernel([SDPBackend.MATH]):
            return batched_loss(params, batch_inputs, batch_targets)

    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    noise = torch.empty(C, P, device=device, dtype=dtype)  # row c: chain c's N(0, I_P) draw
    index = torch.empty(C, m, device=device, dtype=torch.long)  # row c: chain c's minibatch
    step_losses = torch.full((num_steps, C), float("nan"), device=device, dtype=dtype)
    # MALA acceptance of each post-burn-in transition s -> s+1 (row s - burnin), see mala_log_acceptance
    log_accept = torch.full((max(num_steps - burnin - 1, 0), C), float("nan"), device=device, dtype=dtype)
    previous = None  # (U_s, drift G_s, noise ξ_s) of the last post-burn-in step

    for step in range(num_steps):
        # Chain c's generator gives, in this order, its m minibatch indices
        # (uniform on [0, n), with replacement) and its P noise draws.
        for c, gen in enumerate(generators):
            index[c].random_(0, n, generator=gen)
            noise[c].normal_(generator=gen)
        batch_inputs = tuple(t[index] for t in inputs)  # each (C, m, ...)
        batch_targets = targets[index]  # (C, m, ...)

        losses = chains_loss(parameter_views(theta), batch_inputs, batch_targets)  # (C,)
        # Chains are independent, so the gradient of the sum holds each
        # chain's own gradient ∇ℓ_m(w_c) in its row.
        (grad,) = torch.autograd.grad(losses.sum(), theta)  # (C, P)
        with torch.no_grad():
            step_losses[step] = losses
            # Δw = −ε/2 (nβ ∇ℓ_m(w) + γ (w − w*)) + √ε ξ, every term at the current w.
            drift = grad.mul_(nbeta)  # G = ∇U, U(w) = nβ ℓ_m(w) + γ/2 ‖w − w*‖²
            offset = theta - w_star
            if gamma:
                drift.add_(offset, alpha=gamma)
            if step >= burnin:
                potential = nbeta * losses + gamma / 2 * offset.square().sum(dim=1)  # U_s, (C,)
                if previous is not None:
                    log_accept[step - burnin - 1] = mala_log_acceptance(*previous, potential, [drift], eps, C)
                previous = (potential, [drift], noise.clone())
            theta.add_(drift, alpha=-eps / 2)
            theta.add_(noise, alpha=math.sqrt(eps))

        if (step + 1) % _DIVERGENCE_CHECK_EVERY == 0 and not bool(torch.isfinite(losses).any()):
            break  # every chain has diverged: stop early (the rest of the trace stays NaN)

    with torch.no_grad():
        weights_finite = torch.isfinite(theta).all(dim=1)  # (C,)

    def host(t: torch.Tensor) -> np.ndarray:
        return t.detach().to(device="cpu", dtype=torch.float64).numpy()

    return host(step_losses), host(log_accept), weights_finite.cpu().numpy()


def _per_chain_sum_of_squares(tensors: Sequence[torch.Tensor], C: int) -> torch.Tensor:
    """``(C,)``: per chain, the sum of squares over every tensor's entries (each tensor ``(C, *shape)``)."""
    return torch.stack([t.reshape(C, -1).square().sum(dim=1) for t in tensors]).sum(dim=0)


def mala_log_acceptance(
    potential: torch.Tensor,
    drift: Sequence[torch.Tensor],
    noise: torch.Tensor,
    next_potential: torch.Tensor,
    next_drift: Sequence[torch.Tensor],
    epsilon: float,
    C: int,
) -> torch.Tensor:
    """Log Metropolis-adjusted Langevin acceptance ratio of the SGLD transitions ``w_s → w_{s+1}``, per chain.

    The SGLD step ``w_{s+1} = w_s − ε/2 G_s + √ε ξ_s`` (``G = ∇U``, ``U(w) = nβ ℓ_m(w) + γ/2 ‖w − w*‖²``)
    is a Langevin proposal with density ``q(w'|w) = N(w'; w − ε/2 G(w), ε I)``; MALA would accept it
    with probability ``min(1, exp(log α))``::

        log α = U_s − U_{s+1} + log q(w_s | w_{s+1}) − log q(w_{s+1} | w_s)
              = U_s − U_{s+1} − ‖ε/2 (G_s + G_{s+1}) − √ε ξ_s‖² / (2ε) + ‖ξ_s‖² / 2.

    As in devinterp's ``MalaAcceptanceRate``, ``U_s`` and ``G_s`` are taken on step ``s``'s own
    minibatch (no extra evaluation), so minibatch noise enters the ratio too.

    Args:
        potential, next_potential: ``(C,)`` ``U_s``, ``U_{s+1}``.
        drift, next_drift: ``G_s``, ``G_{s+1}``, one ``(C, *shape)`` tensor per parameter.
        noise: ``(C, P)`` the standard normal draws ``ξ_s`` of the step (parameters in ``drift``'s order).
        epsilon: ``ε``.
        C: number of chains.

    Returns:
        ``(C,)`` ``log α`` (not clipped at 0).
    """
    residual = torch._foreach_add(drift, next_drift)
    torch._foreach_mul_(residual, epsilon / 2)
    sizes = [t[0].numel() for t in drift]
    views = [v.view_as(t) for v, t in zip(noise.split(sizes, dim=1), drift)]
    torch._foreach_add_(residual, views, alpha=-math.sqrt(epsilon))
    reverse = _per_chain_sum_of_squares(residual, C) / (2 * epsilon)
    forward = noise.square().sum(dim=1) / 2
    return potential - next_potential - reverse + forward


def _full_loss(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    chunk: int,
) -> float:
    """``ℓ_n(w*)``: the mean loss over all n samples, in chunks of ``chunk``.

    Chunk means are weighted by chunk size, which is exact for a loss that is a
    mean over samples (each sample contributing equally many terms).
    """
    n = targets.shape[0]
    total = 0.0
    with torch.no_grad():
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            loss = loss_fn(model(*(t[lo:hi] for t in inputs)), targets[lo:hi])
            if loss.numel() != 1:
                raise ValueError(
                    f"loss_fn must return a scalar (the mean loss over the batch); got shape {tuple(loss.shape)}"
                )
            total += float(loss) * (hi - lo)
    return total / n


def estimate_llc(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Sequence[torch.Tensor],
    targets: torch.Tensor,
    settings: Mapping[str, object],
) -> SGLDLearningCoefficient:
    """Fit an :class:`SGLDLearningCoefficient` built from a settings mapping.

    Args:
        settings: constructor arguments by name (e.g. the ``llc`` part of the
            pipeline config); an unknown key raises ``ValueError`` naming it.

    Returns:
        The fitted estimator.
    """
    allowed = [p for p in inspect.signature(SGLDLearningCoefficient.__init__).parameters if p != "self"]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"unknown LLC setting(s) {unknown}; allowed: {allowed}")
    return SGLDLearningCoefficient(**settings).fit(model, loss_fn, inputs, targets)
