"""Many small transformers trained as one batched computation (design sweeps on a GPU).

An ensemble of ``E`` copies of :class:`~transient_ridge.model.InContextRegressionTransformer`,
each with its own weights, data stream, task set and optimizer settings, stacked on a
leading member axis: every matmul is one batched matmul over members, and Adam (or
AdamW) is a handful of elementwise kernels on one flat ``(E, P)`` parameter buffer.
For a model this small one GPU step of the whole ensemble costs about what one member's
step does, so a grid of designs × M × seeds trains in the time of one run.

The members compute exactly what the single model computes (``tests/test_ensemble.py``
loads a member's weights into the package model and compares outputs, and compares
the optimizer step with ``torch.optim.Adam``/``AdamW``). The pipeline itself trains one
model per job (:mod:`transient_ridge.train`); this module serves
``benchmarks/transient_sweep.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .model import InContextRegressionTransformer, ModelConfig, stacked_forward

__all__ = ["EnsembleTransformer", "EnsembleAdam", "sample_ensemble_batch"]


class EnsembleTransformer:
    """``E`` transformers of one shape with stacked weights in one flat leaf tensor.

    Args:
        config: the shared model shape.
        init_seeds: one seed per member; member ``e`` starts from the weights
            ``InContextRegressionTransformer(config)`` gets after ``torch.manual_seed(init_seeds[e])``,
            i.e. the pipeline's :func:`transient_ridge.train.init_model` for that init seed.
        device: where the weights live.

    Attributes:
        flat: ``(E, P)`` leaf tensor holding every member's ``P`` parameters.
        names, shapes: parameter names and per-member shapes, in the order of ``flat``.
    """

    def __init__(self, config: ModelConfig, init_seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.config = config
        states = []
        for seed in init_seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                states.append(InContextRegressionTransformer(config).state_dict())
        self.names = list(states[0])
        self.shapes = [tuple(states[0][name].shape) for name in self.names]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        rows = [torch.cat([state[name].reshape(-1) for name in self.names]) for state in states]
        self.flat = torch.stack(rows).to(device).requires_grad_(True)  # (E, P)

    @property
    def num_members(self) -> int:
        return self.flat.shape[0]

    def parameters(self) -> dict[str, torch.Tensor]:
        """Views of ``flat``: name -> ``(E, *shape)``."""
        views = torch.split(self.flat, self.sizes, dim=1)
        return {name: view.reshape(-1, *shape) for name, view, shape in zip(self.names, views, self.shapes)}

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """One member's weights as a state dict of the package model (detached CPU copies)."""
        return {name: p[member].detach().cpu().clone() for name, p in self.parameters().items()}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Predictions ``(E, B, K)`` for inputs ``x (E, B, K, D)``, ``y (E, B, K)``."""
        return stacked_forward(self.config, self.parameters(), x, y)


@dataclass
class EnsembleAdam:
    """Adam on an ``(E, P)`` parameter buffer with per-member learning rate and weight decay.

    Matches ``torch.optim.Adam(weight_decay=wd)`` (L2 added to the gradient) where
    ``decoupled`` is false and ``torch.optim.AdamW(weight_decay=wd)`` (weights shrunk by
    ``lr·wd``) where it is true, member by member.

    Args:
        params: the ``(E, P)`` leaf tensor.
        weight_decay: ``(E,)`` per-member decay.
        decoupled: ``(E,)`` bool, AdamW-style decay per member.
    """

    params: torch.Tensor
    weight_decay: torch.Tensor
    decoupled: torch.Tensor
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        self.exp_avg = torch.zeros_like(self.params)
        self.exp_avg_sq = torch.zeros_like(self.params)
        self.step_count = 0
        wd = self.weight_decay.to(self.params)[:, None]
        decoupled = self.decoupled.to(self.params.device)[:, None]
        self._l2 = torch.where(decoupled, torch.zeros_like(wd), wd)  # (E, 1)
        self._shrink = torch.where(decoupled, wd, torch.zeros_like(wd))  # (E, 1)

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One update with per-member learning rates ``lr (E,)``; reads ``params.grad``."""
        beta1, beta2 = self.betas
        self.step_count += 1
        grad = self.params.grad + self._l2 * self.params
        lr = lr.to(self.params)[:, None]
        self.params.mul_(1.0 - lr * self._shrink)
        self.exp_avg.lerp_(grad, 1.0 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        bias1 = 1.0 - beta1**self.step_count
        bias2 = 1.0 - beta2**self.step_count
        denominator = (self.exp_avg_sq / bias2).sqrt_().add_(self.eps)
        self.params.sub_(lr * self.exp_avg / (bias1 * denominator))
        self.params.grad = None


def sample_ensemble_batch(
    tasks: torch.Tensor,
    M: torch.Tensor,
    *,
    batch_size: int,
    K: int,
    noise_variance: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch per member from its ``q_M``: ``x (E, B, K, D)``, ``y (E, B, K)``.

    Args:
        tasks: the nested task sequence ``(M_max, D)``; member ``e`` draws uniformly from
            its first ``M[e]`` rows.
        M: ``(E,)`` float task counts, ``inf`` for a fresh Gaussian task per sequence.
        generator: the stream (on the tasks' device); batches are not the pipeline's
            ``(seed, step)`` batches, only drawn from the same distributions.
    """
    E, device, dtype = M.shape[0], tasks.device, tasks.dtype
    D = tasks.shape[1]
    finite = torch.isfinite(M)
    counts = torch.where(finite, M, torch.ones_like(M))[:, None]  # (E, 1)
    index = (torch.rand(E, batch_size, generator=generator, device=device) * counts).long()
    index = torch.minimum(index, counts.long() - 1)
    drawn = tasks[index]  # (E, B, D)
    gaussian = torch.randn(E, batch_size, D, generator=generator, device=device, dtype=dtype)
    task = torch.where(finite[:, None, None], drawn, gaussian)
    x = torch.randn(E, batch_size, K, D, generator=generator, device=device, dtype=dtype)
    noise = torch.randn(E, batch_size, K, generator=generator, device=device, dtype=dtype)
    y = torch.einsum("ebkd,ebd->ebk", x, task) + math.sqrt(noise_variance) * noise
    return x, y
