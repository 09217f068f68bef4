"""Run-time plumbing shared by the workflow scripts: logging to a file, device and threads."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch

__all__ = ["configure_logging", "pick_device", "set_threads"]


def configure_logging(log_path: str | Path | None, level: int = logging.INFO) -> None:
    """Send ``logging`` records (and uncaught exceptions) to ``log_path`` and stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=level, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.captureWarnings(True)

    def log_uncaught(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        logging.getLogger("transient_ridge").error("job failed", exc_info=(exc_type, exc, tb))

    sys.excepthook = log_uncaught


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def set_threads(threads: int) -> None:
    """Intra-op threads for torch (Snakemake's ``threads``)."""
    torch.set_num_threads(max(1, int(threads)))
