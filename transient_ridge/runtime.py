"""Run-time plumbing shared by the workflow scripts: logging to a file, device and threads.

torch is imported inside the functions that need it: most rules (evaluate,
pca, figures, claims) never touch it, and importing it costs seconds per job.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["configure_logging", "claim_device", "set_threads", "one_line", "byte_compile_package"]


def one_line(error: BaseException, limit: int = 300) -> str:
    """``"Type: message"`` of an exception on one line (whitespace folded, cut to ``limit`` characters).

    For error messages that quote a library's error inside their own: tarfile,
    zarr and torch put newlines and whole option lists into theirs.
    """
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text if len(text) <= limit else text[: limit - 1] + '…'}"


def byte_compile_package(package_dir: str | Path | None = None) -> bool:
    """Write the bytecode (``__pycache__/*.pyc``) of every module of the package, where missing or stale.

    Every job is a fresh interpreter that imports the package. Where ``PYTHONDONTWRITEBYTECODE``
    is set (common in containers, and on the project's CI machines) no import ever writes the
    bytecode, so each job compiles the package's modules again (about 0.5 s a job on a 2-core
    CPU); the workflow calls this once before its jobs start. A package folder that cannot be
    written (an installed, read-only copy) is left as it is.

    Args:
        package_dir: the folder of the package's sources (default: this package's own).

    Returns:
        Whether every module's bytecode is now up to date.
    """
    import compileall

    folder = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    try:
        return bool(compileall.compile_dir(folder, quiet=2, workers=1))
    except OSError:
        return False


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


def set_threads(threads: int) -> None:
    """Intra-op threads for torch (Snakemake's ``threads``)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))


@contextlib.contextmanager
def claim_device(lock_dir: str | Path | None = None) -> Iterator[torch.device]:
    """Hold one GPU for the duration of a job; CPU when there is none.

    Snakemake's ``gpu`` resource only limits *how many* GPU jobs run at once;
    it does not say *which* GPU each job gets. Each job therefore takes an
    exclusive ``flock`` on ``gpu-<i>.lock`` for the first free visible GPU
    ``i`` and keeps it until the job ends (the kernel drops the lock if the
    job dies). With ``resources: gpu=N`` and N visible GPUs a free one always
    exists; under SLURM ``CUDA_VISIBLE_DEVICES`` already shows one GPU.
    """
    import torch

    if not torch.cuda.is_available():
        yield torch.device("cpu")
        return
    lock_dir = Path(lock_dir or os.environ.get("TRANSIENT_RIDGE_LOCK_DIR", tempfile.gettempdir()))
    lock_dir.mkdir(parents=True, exist_ok=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_")
    while True:
        for index in range(torch.cuda.device_count()):
            handle = open(lock_dir / f"transient-ridge-gpu-{visible}-{index}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                logging.getLogger(__name__).info("claimed GPU %d (%s)", index, torch.cuda.get_device_name(index))
                torch.cuda.set_device(index)
                yield torch.device("cuda", index)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(1.0)  # more GPU jobs than GPUs: wait for one to free up
