"""Numerical precision of training: ``training.precision`` = fp32 | tf32 | bf16.

- ``fp32``: IEEE float32 matmuls everywhere (the default, and the reference).
- ``tf32``: float32 tensors, matmuls on TensorFloat-32 tensor cores (10-bit
  mantissa inputs, float32 accumulation). Only NVIDIA GPUs from Ampere on have
  them; on a CPU the setting changes nothing.
- ``bf16``: ``torch.autocast`` to bfloat16 around the forward pass and the
  loss; the weights, gradients and Adam state stay float32 ("master weights").

PyTorch has two switches for TF32. From 2.9 on, the backend properties
``torch.backends.cuda.matmul.fp32_precision`` (and ``torch.backends.cudnn.conv``)
take ``"ieee"`` / ``"tf32"``; the legacy ``torch.backends.cuda.matmul.allow_tf32``
flag still exists but mixing the two raises errors on read. :func:`tf32_api`
picks the one this torch has and only that one is ever touched here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from .config import PRECISIONS

__all__ = ["PRECISIONS", "tf32_api", "precision_settings", "fp32_matmul", "check_precision", "training_precision"]

def tf32_api() -> str:
    """Which TF32 switch this torch has: ``"fp32_precision"`` (>= 2.9) or ``"allow_tf32"`` (legacy)."""
    return "fp32_precision" if hasattr(torch.backends.cuda.matmul, "fp32_precision") else "allow_tf32"


def precision_settings() -> dict[str, str]:
    """The float32 matmul settings in force, read through the API this torch has (JSON-safe strings)."""
    if tf32_api() == "fp32_precision":
        return {
            "tf32_api": "torch.backends.*.fp32_precision",
            "torch.backends.fp32_precision": str(torch.backends.fp32_precision),
            "torch.backends.cuda.matmul.fp32_precision": str(torch.backends.cuda.matmul.fp32_precision),
            "torch.backends.cudnn.conv.fp32_precision": str(torch.backends.cudnn.conv.fp32_precision),
        }
    return {
        "tf32_api": "torch.backends.cuda.matmul.allow_tf32 (legacy)",
        "torch.backends.cuda.matmul.allow_tf32": str(torch.backends.cuda.matmul.allow_tf32),
        "torch.backends.cudnn.allow_tf32": str(torch.backends.cudnn.allow_tf32),
        "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision(),
    }


@contextlib.contextmanager
def fp32_matmul(tf32: bool) -> Iterator[None]:
    """Float32 matmuls (and cuDNN convolutions) in TF32 (``True``) or IEEE (``False``) inside the block.

    The previous values are restored on exit, through the same API.
    """
    if tf32_api() == "fp32_precision":
        matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
        saved = (matmul.fp32_precision, conv.fp32_precision)
        matmul.fp32_precision = conv.fp32_precision = "tf32" if tf32 else "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision, conv.fp32_precision = saved
    else:
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def check_precision(precision: str, where: str = "training.precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; a ``ValueError`` naming ``where`` otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"{where}={precision!r} is not a precision; allowed: {', '.join(PRECISIONS)} "
            "(fp32 is the reference; tf32 needs an NVIDIA GPU to change anything)"
        )
    return precision


@contextlib.contextmanager
def training_precision(
    precision: str, device: torch.device | str
) -> Iterator[Callable[[], contextlib.AbstractContextManager]]:
    """Set up ``precision`` for a training loop; yields a factory of the context for each forward pass.

    TF32 (or IEEE) matmuls hold for the whole block; for ``bf16`` each call of
    the yielded factory gives a bfloat16 ``torch.autocast`` on ``device``'s
    type, to wrap the forward pass and the loss in (the backward pass and the
    optimizer step go outside it); otherwise a no-op context.
    """
    check_precision(precision)
    device_type = torch.device(device).type
    with fp32_matmul(precision == "tf32"):
        if precision == "bf16":
            yield lambda: torch.autocast(device_type, dtype=torch.bfloat16)
        else:
            yield contextlib.nullcontext
