"""In-context linear regression data: nested task sets, stateless batches, probe sets.

A sequence (Carroll et al. 2025, §2): task ``t``, inputs ``x_k ~ N(0, I_D)``,
targets ``y_k = t·x_k + N(0, σ²)``, ``k = 1..K``. Task sets are nested: one
fixed i.i.d. sequence ``t_1, t_2, … ~ N(0, I_D)`` and ``T_M = {t_1..t_M}``;
``q_M`` draws tasks uniformly with replacement from ``T_M``; ``M = ∞`` draws a
fresh Gaussian task per sequence.

Every batch is a pure function of ``(seed, step)``, so a resumed run sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a batch is drawn: the task and probe stages never need it
    import torch

__all__ = [
    "draw_task_sequence",
    "task_set",
    "stream_seed",
    "sample_batch",
    "sample_sequences",
    "ProbeSets",
    "make_probe_sets",
]


def draw_task_sequence(seed: int, num_tasks: int, D: int) -> np.ndarray:
    """The nested task sequence ``t_1 … t_num_tasks``, shape ``(num_tasks, D)``, float64.

    ``T_M`` is the first ``M`` rows, so every task set contains the smaller
    ones and the root task ``t_1`` is in all of them.
    """
    if num_tasks < 1 or D < 1:
        raise ValueError(f"need num_tasks >= 1 and D >= 1, got num_tasks={num_tasks}, D={D}")
    return np.random.default_rng(seed).standard_normal((num_tasks, D))


def task_set(tasks: np.ndarray, M: float) -> np.ndarray | None:
    """``T_M`` as the first ``M`` rows of the task sequence, or ``None`` for ``M = ∞``."""
    if math.isinf(M):
        return None
    if int(M) > tasks.shape[0]:
        raise ValueError(f"M={int(M)} exceeds the {tasks.shape[0]} tasks drawn; draw a longer sequence")
    return tasks[: int(M)]


def stream_seed(seed: int, step: int) -> int:
    """A 63-bit generator seed derived from ``(seed, step)`` (independent streams per step)."""
    state = np.random.SeedSequence([seed, step]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def sample_batch(
    tasks: torch.Tensor | None,
    *,
    seed: int,
    step: int,
    batch_size: int,
    K: int,
    D: int,
    noise_variance: float,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training batch from ``q_M``, a pure function of ``(seed, step)``.

    Args:
        tasks: ``T_M`` as a ``(M, D)`` tensor on ``device``; ``None`` for ``M = ∞``.
    Returns:
        ``x`` of shape ``(batch_size, K, D)`` and ``y`` of shape ``(batch_size, K)``.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    generator = torch.Generator(device=device).manual_seed(stream_seed(seed, step))
    if tasks is None:
        task = torch.randn(batch_size, D, generator=generator, device=device, dtype=dtype)
    else:
        index = torch.randint(0, tasks.shape[0], (batch_size,), generator=generator, device=device)
        task = tasks[index].to(dtype)
    x = torch.randn(batch_size, K, D, generator=generator, device=device, dtype=dtype)
    noise = torch.randn(batch_size, K, generator=generator, device=device, dtype=dtype)
    y = torch.einsum("bkd,bd->bk", x, task) + math.sqrt(noise_variance) * noise
    return x, y


def sample_sequences(
    rng: np.random.Generator,
    tasks: np.ndarray | None,
    num_sequences: int,
    K: int,
    D: int,
    noise_variance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences from ``q_M`` with numpy (used for the fixed probe sets).

    Returns ``x`` ``(num_sequences, K, D)`` and ``y`` ``(num_sequences, K)``, float32.
    """
    if tasks is None:
        task = rng.standard_normal((num_sequences, D))
    else:
        task = tasks[rng.integers(0, tasks.shape[0], size=num_sequences)]
    x = rng.standard_normal((num_sequences, K, D))
    y = np.einsum("bkd,bd->bk", x, task) + math.sqrt(noise_variance) * rng.standard_normal((num_sequences, K))
    return x.astype(np.float32), y.astype(np.float32)


@dataclass(frozen=True)
class ProbeSets:
    """The fixed evaluation sets.

    Attributes:
        root_x, root_y: ``(B, K, D)``, ``(B, K)`` from ``q_1`` (the root task ``t_1``).
        ood_x, ood_y: ``(N_ood, K, D)``, ``(N_ood, K)`` from ``q_∞``.
        id_x, id_y: ``(len(M), N_id, K, D)``, ``(len(M), N_id, K)``, one set per M.
        M: the task counts of ``id_x`` (float, ``inf`` for ∞).
    """

    root_x: np.ndarray
    root_y: np.ndarray
    ood_x: np.ndarray
    ood_y: np.ndarray
    id_x: np.ndarray
    id_y: np.ndarray
    M: tuple[float, ...]


def _m_key(M: float) -> int:
    """Seed key of an M value (0 for ∞) so that adding M values leaves the others' sets unchanged."""
    return 0 if math.isinf(M) else int(M)


def make_probe_sets(
    tasks: np.ndarray,
    M_values: tuple[float, ...],
    *,
    seed: int,
    K: int,
    noise_variance: float,
    root_sequences: int,
    ood_sequences: int,
    id_sequences: int,
) -> ProbeSets:
    """Draw the root (``q_1``), OOD (``q_∞``) and per-M in-distribution probe sets."""
    D = tasks.shape[1]
    root = sample_sequences(np.random.default_rng([seed, 1]), tasks[:1], root_sequences, K, D, noise_variance)
    ood = sample_sequences(np.random.default_rng([seed, 2]), None, ood_sequences, K, D, noise_variance)
    id_sets = [
        sample_sequences(
            np.random.default_rng([seed, 3, _m_key(M)]), task_set(tasks, M), id_sequences, K, D, noise_variance
        )
        for M in M_values
    ]
    return ProbeSets(
        root_x=root[0],
        root_y=root[1],
        ood_x=ood[0],
        ood_y=ood[1],
        id_x=np.stack([s[0] for s in id_sets]),
        id_y=np.stack([s[1] for s in id_sets]),
        M=tuple(M_values),
    )
