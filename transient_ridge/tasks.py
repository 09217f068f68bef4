"""The ``tasks`` stage: the nested task sequence and the fixed probe sets as one labelled dataset."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .config import ExperimentConfig
from .data import draw_task_sequence, make_probe_sets
from .store import provenance_attrs

__all__ = ["build_tasks_dataset", "tasks_from_dataset"]


def build_tasks_dataset(cfg: ExperimentConfig) -> xr.Dataset:
    """``tasks.zarr`` content (layout in docs/stores.md) for one experiment.

    The task sequence has ``max finite M`` rows (float64); the probe inputs are
    float32, the precision the models see.
    """
    data = cfg.data
    tasks = draw_task_sequence(cfg.seeds.tasks, data.max_finite_M, data.D)
    probes = make_probe_sets(
        tasks,
        data.M,
        seed=cfg.seeds.probes,
        K=data.K,
        noise_variance=data.noise_variance,
        root_sequences=cfg.probes.root_sequences,
        ood_sequences=cfg.probes.ood_sequences,
        id_sequences=cfg.probes.id_sequences,
    )
    coords = {
        "task": np.arange(1, tasks.shape[0] + 1),
        "dim": np.arange(data.D),
        "token": np.arange(1, data.K + 1),
        "sequence": np.arange(cfg.probes.root_sequences),
        "ood_sequence": np.arange(cfg.probes.ood_sequences),
        "id_sequence": np.arange(cfg.probes.id_sequences),
        "M": np.array(data.M, dtype=np.float64),
    }
    dataset = xr.Dataset(
        {
            "tasks": (("task", "dim"), tasks),
            "root_x": (("sequence", "token", "dim"), probes.root_x),
            "root_y": (("sequence", "token"), probes.root_y),
            "ood_x": (("ood_sequence", "token", "dim"), probes.ood_x),
            "ood_y": (("ood_sequence", "token"), probes.ood_y),
            "id_x": (("M", "id_sequence", "token", "dim"), probes.id_x),
            "id_y": (("M", "id_sequence", "token"), probes.id_y),
        },
        coords=coords,
        attrs={
            "D": data.D,
            "K": data.K,
            "noise_variance": data.noise_variance,
            **provenance_attrs(cfg.name, cfg.to_json()),
        },
    )
    dataset["tasks"].attrs["description"] = "nested task sequence; T_M is the first M rows"
    return dataset


def tasks_from_dataset(dataset: xr.Dataset) -> np.ndarray:
    """The task sequence ``(Mmax, D)`` float64 from a tasks dataset."""
    return np.asarray(dataset["tasks"].values, dtype=np.float64)
