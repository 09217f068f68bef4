"""Where a training run keeps its resume state and its outputs, and how a finished run is published.

Torch-free on purpose: a ``train`` job whose run was already trained by its group's
leader (:mod:`transient_ridge.train_group`) only publishes what was staged for it,
and need not pay for importing torch.

Layout of a run directory (see :mod:`transient_ridge.train`)::

    .resume/state.pt           latest full state (model, optimizer, step)
    .resume/state.next.pt      a group member's next state, until every member of the group has one
    .resume/checkpoints/       weights at the kept checkpoint steps
    .resume/predictions/       raw probe-set predictions, one file per resume interval
    .resume/predictions.zarr   the predictions store, written once training is complete
    .resume/complete.json      written last: the run is trained and staged (settings, M, step)
    checkpoints/               (declared output) moved here from .resume/ by publish_staged_run
    predictions.zarr           (declared output) likewise
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunFiles", "replace_directory", "mark_staged", "publish_staged_run"]

log = logging.getLogger(__name__)


def replace_directory(source: str | Path, target: str | Path) -> None:
    """Move ``source`` to ``target``, replacing ``target`` if it exists (rename within one filesystem)."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    os.replace(source, target)


@dataclass(frozen=True)
class RunFiles:
    """The paths of one run directory: its resume state (``.resume/``) and its declared outputs."""

    run_dir: Path

    @property
    def resume_dir(self) -> Path:
        return self.run_dir / ".resume"

    @property
    def state(self) -> Path:
        return self.resume_dir / "state.pt"

    @property
    def pending_state(self) -> Path:
        """A group member's next state, moved to ``state`` once every member of its group has one."""
        return self.resume_dir / "state.next.pt"

    @property
    def staged_checkpoints(self) -> Path:
        return self.resume_dir / "checkpoints"

    @property
    def staged_predictions(self) -> Path:
        return self.resume_dir / "predictions"

    @property
    def staged_store(self) -> Path:
        return self.resume_dir / "predictions.zarr"

    @property
    def complete_marker(self) -> Path:
        return self.resume_dir / "complete.json"

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def predictions(self) -> Path:
        return self.run_dir / "predictions.zarr"


def mark_staged(files: RunFiles, *, fingerprint: str, M: float, step: int) -> None:
    """Record (atomically, last) that the run is trained to ``step`` and its outputs are staged in ``.resume/``."""
    temporary = files.complete_marker.with_name(f".{files.complete_marker.name}.tmp")
    temporary.write_text(json.dumps({"fingerprint": fingerprint, "M": float(M), "step": int(step)}))
    os.replace(temporary, files.complete_marker)


def staged_for(files: RunFiles, *, fingerprint: str, M: float, step: int) -> bool:
    """Whether ``.resume/`` holds this run's outputs, trained to ``step`` under these settings."""
    try:
        marker = json.loads(files.complete_marker.read_text())
    except (OSError, ValueError):
        return False
    return (
        marker.get("fingerprint") == fingerprint
        and marker.get("M") == float(M)
        and marker.get("step") == int(step)
        and files.staged_store.is_dir()
        and files.staged_checkpoints.is_dir()
    )


def publish_staged_run(run_dir: str | Path, *, fingerprint: str, M: float, step: int, label: str) -> bool:
    """Move a run's staged outputs into place and drop ``.resume/``, if they were staged under these settings.

    Returns ``False`` (and touches nothing) when they were not: the run must then be trained.
    A kill part-way leaves ``.resume/`` with the state, so the job trains nothing twice:
    rerun, it finds the state at the last step and stages again.
    """
    files = RunFiles(Path(run_dir))
    if not staged_for(files, fingerprint=fingerprint, M=M, step=step):
        return False
    files.complete_marker.unlink()  # from here on a rerun re-stages from the state instead
    replace_directory(files.staged_store, files.predictions)
    replace_directory(files.staged_checkpoints, files.checkpoints)
    shutil.rmtree(files.resume_dir)
    log.info("%s: published %s and %s", label, files.predictions, files.checkpoints)
    return True
