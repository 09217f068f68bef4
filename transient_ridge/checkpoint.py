"""Self-describing checkpoints: weights plus everything needed to rebuild the model.

A checkpoint file is never overwritten; loading is strict and names the
parameter that does not match.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .model import InContextRegressionTransformer, ModelConfig
from .runtime import one_line

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointMismatchError",
    "checkpoint_path",
    "save_checkpoint",
    "load_checkpoint",
    "load_state_dict_strict",
    "atomic_torch_save",
    "list_checkpoints",
]

CHECKPOINT_FORMAT = "transient-ridge-checkpoint/1"


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into, or cannot be read at all."""


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """File name of the checkpoint at ``step``: ``step_0001500.pt``."""
    return Path(directory) / f"step_{step:07d}.pt"


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary sibling, then rename: a crash never leaves a torn file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(obj, temporary)
    os.replace(temporary, path)


def save_checkpoint(
    path: str | Path,
    model: InContextRegressionTransformer,
    *,
    step: int,
    M: float,
    experiment_config: str,
    precision: str = "fp32",
) -> None:
    """Write one checkpoint: weights, step, M, model config, experiment config (JSON) and the
    training precision (``training.precision``: fp32, tf32 or bf16) the weights were trained in."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"checkpoint {path} exists; checkpoints are never overwritten")
    atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "step": int(step),
            "M": float(M),
            "model_config": model.config.to_dict(),
            "experiment_config": experiment_config,
            "precision": precision,
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        },
        path,
    )


def load_state_dict_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, naming every missing, unexpected or reshaped parameter on mismatch."""
    template = model.state_dict()
    problems = []
    for name in sorted(set(template) - set(state_dict)):
        problems.append(f"missing parameter {name!r} (model expects shape {tuple(template[name].shape)})")
    for name in sorted(set(state_dict) - set(template)):
        problems.append(f"unexpected parameter {name!r} with shape {tuple(state_dict[name].shape)}")
    for name in sorted(set(state_dict) & set(template)):
        if state_dict[name].shape != template[name].shape:
            problems.append(
                f"parameter {name!r} has shape {tuple(state_dict[name].shape)} in {source} "
                f"but {tuple(template[name].shape)} in the model"
            )
    if problems:
        raise CheckpointMismatchError(f"{source} does not fit the model:\n  " + "\n  ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def load_checkpoint(
    path: str | Path,
    *,
    expected_config: ModelConfig | None = None,
    device: torch.device | str = "cpu",
) -> tuple[InContextRegressionTransformer, dict[str, Any]]:
    """Rebuild the model stored at ``path``.

    Args:
        expected_config: if given, the stored model config must equal it
            (the differing fields are named otherwise).
    Returns:
        the model (eval mode, on ``device``) and the checkpoint's metadata
        (``step``, ``M``, ``model_config``, ``experiment_config``, and ``precision``
        in checkpoints written since it was recorded).
    """
    from .archive import NO_WEIGHTS_NOTE

    path = Path(path)
    if not path.exists():
        if (path.parent / NO_WEIGHTS_NOTE).exists():
            raise FileNotFoundError(
                f"{path}: this run was restored from an archive without weights; restore the archive made by "
                "`snakemake archive_<exp>_weights`, or retrain: snakemake -c 2 <exp> --forcerun train"
            )
        raise FileNotFoundError(
            f"{path} is missing ({len(list_checkpoints(path.parent))} other checkpoints in {path.parent}); "
            f"the run's weights are incomplete: retrain it with snakemake -c 2 --forcerun {path.parent}"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as error:  # truncated or overwritten
        raise CheckpointMismatchError(
            f"{path} cannot be read as a checkpoint ({one_line(error)}); "
            f"it is truncated or damaged: retrain the run with snakemake -c 2 --forcerun {path.parent}"
        ) from error
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    config = ModelConfig(**payload["model_config"])
    if expected_config is not None and config != expected_config:
        differing = {
            field: (getattr(config, field), getattr(expected_config, field))
            for field in config.to_dict()
            if getattr(config, field) != getattr(expected_config, field)
        }
        raise CheckpointMismatchError(f"{path}: model config differs (stored, expected): {differing}")
    model = InContextRegressionTransformer(config)
    load_state_dict_strict(model, payload["state_dict"], str(path))
    metadata = {key: value for key, value in payload.items() if key != "state_dict"}
    return model.to(device).eval(), metadata


def list_checkpoints(directory: str | Path) -> dict[int, Path]:
    """Checkpoint files in ``directory`` by step."""
    return {
        int(path.stem.split("_")[1]): path
        for path in sorted(Path(directory).glob("step_*.pt"))
    }
