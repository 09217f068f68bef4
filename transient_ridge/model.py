"""The in-context linear regression transformer.

A causal pre-LayerNorm transformer on interleaved tokens (Carroll et al. 2025,
§2): x-token ``[0, x_k]``, y-token ``[y_k, 0, …, 0]`` (width ``D + 1``), ``2K``
tokens in all; learned positional embeddings; linear embedding and read-out
without bias. The prediction ``ŷ_k`` is coordinate 0 of the read-out at the
x-token of ``x_k``, which (causal attention) sees only the earlier pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "ModelConfig",
    "InContextRegressionTransformer",
    "interleave_tokens",
    "stacked_forward",
    "count_parameters",
]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model (stored in every checkpoint)."""

    D: int
    K: int
    n_layer: int
    d_model: int
    n_head: int
    d_mlp: int

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def interleave_tokens(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Build the token sequence ``[0, x_1], [y_1, 0], [0, x_2], …``.

    Args:
        x: ``(B, K, D)`` inputs; y: ``(B, K)`` targets.
    Returns:
        ``(B, 2K, D + 1)`` tokens.
    """
    B, K, D = x.shape
    x_tokens = F.pad(x, (1, 0))  # (B, K, D+1): [0, x]
    y_tokens = F.pad(y.unsqueeze(-1), (0, D))  # (B, K, D+1): [y, 0, ..., 0]
    return torch.stack((x_tokens, y_tokens), dim=2).reshape(B, 2 * K, D + 1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, T, C = h.shape
        q, k, v = self.qkv(h).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.proj(out.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.d_model, config.d_mlp)
        self.down = nn.Linear(config.d_mlp, config.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(h)))


class Block(nn.Module):
    """Pre-LayerNorm residual block: ``h + attn(ln(h))``, then ``h + mlp(ln(h))``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln_mlp = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln_attn(h))
        return h + self.mlp(self.ln_mlp(h))


class InContextRegressionTransformer(nn.Module):
    """Maps ``(x, y)`` of shape ``(B, K, D), (B, K)`` to predictions ``ŷ`` of shape ``(B, K)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width = config.D + 1
        self.embed = nn.Linear(width, config.d_model, bias=False)
        self.position = nn.Embedding(2 * config.K, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.unembed = nn.Linear(config.d_model, width, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        tokens = interleave_tokens(x, y)  # (B, 2K, D+1)
        T = tokens.shape[1]
        h = self.embed(tokens) + self.position.weight[:T]  # (B, 2K, d_model)
        for block in self.blocks:
            h = block(h)
        out = self.unembed(self.ln_final(h))  # (B, 2K, D+1)
        return out[:, 0::2, 0]  # coordinate 0 at the x-tokens: (B, K)

    def forward_stacked(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``C`` copies of this model with stacked weights (see :func:`stacked_forward`): ``(C, B, K)``."""
        return stacked_forward(self.config, params, x, y)


def stacked_forward(
    config: ModelConfig, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Predictions of ``C`` models of one shape with their own weights, as one batched computation.

    Computes, for every ``c``, what :class:`InContextRegressionTransformer` with the
    weights ``{name: params[name][c]}`` computes on ``x[c], y[c]``: every linear map is
    one batched matmul over ``c``, attention runs over the ``C·B`` sequences at once.
    On a CPU this is faster than ``torch.func.vmap`` over ``functional_call`` (no
    batching rules; the fused attention kernel stays usable).

    Args:
        params: the model's ``state_dict`` names, each ``(C, *shape)``.
        x: ``(C, B, K, D)`` inputs; y: ``(C, B, K)`` targets.
    Returns:
        ``(C, B, K)`` predictions.
    """
    C, B, K, D = x.shape
    T, n_head = 2 * K, config.n_head
    tokens = interleave_tokens(x.reshape(C * B, K, D), y.reshape(C * B, K)).reshape(C, B * T, D + 1)
    h = torch.bmm(tokens, params["embed.weight"].transpose(1, 2))  # (C, B·T, d)
    d = h.shape[-1]
    h = (h.reshape(C, B, T, d) + params["position.weight"][:, None, :T]).reshape(C, B * T, d)

    def linear(inputs: torch.Tensor, name: str) -> torch.Tensor:  # (C, N, in) -> (C, N, out)
        return torch.baddbmm(params[f"{name}.bias"][:, None, :], inputs, params[f"{name}.weight"].transpose(1, 2))

    def layer_norm(inputs: torch.Tensor, name: str) -> torch.Tensor:
        normed = F.layer_norm(inputs, (d,))
        return normed * params[f"{name}.weight"][:, None, :] + params[f"{name}.bias"][:, None, :]

    for i in range(config.n_layer):
        prefix = f"blocks.{i}"
        qkv = linear(layer_norm(h, f"{prefix}.ln_attn"), f"{prefix}.attn.qkv")  # (C, B·T, 3d)
        q, k, v = (
            part.reshape(C * B, T, n_head, d // n_head).transpose(1, 2) for part in qkv.split(d, dim=2)
        )  # (C·B, nh, T, hs)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + linear(attended.transpose(1, 2).reshape(C, B * T, d), f"{prefix}.attn.proj")
        up = F.gelu(linear(layer_norm(h, f"{prefix}.ln_mlp"), f"{prefix}.mlp.up"))
        h = h + linear(up, f"{prefix}.mlp.down")
    out = torch.bmm(layer_norm(h, "ln_final"), params["unembed.weight"].transpose(1, 2))  # (C, B·T, D+1)
    return out.reshape(C, B, T, D + 1)[:, :, 0::2, 0]


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters."""
    return sum(p.numel() for p in module.parameters())
