"""Compare two builds of an experiment: what a rerun, a resumed job or another executor must reproduce.

Everything but the provenance stamps (which record when and by which process a file was made)
and the LLC fits' wall times (``elapsed_s``):
every zarr store's data and attributes, the weights at every checkpoint, the claims, and the
pixels of every figure.
"""

import json
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from transient_ridge.checkpoint import list_checkpoints
from transient_ridge.store import open_dataset


TIMINGS = ["elapsed_s"]  # wall time of each LLC fit: differs between any two builds


def zarr_stores(root: Path) -> list[Path]:
    """Every zarr store (a folder with a zarr.json group) under ``root``, relative to it."""
    return sorted(p.relative_to(root) for p in root.rglob("*.zarr") if (p / "zarr.json").exists())


def assert_same_store(a: Path, b: Path) -> None:
    left, right = (open_dataset(p).drop_vars(TIMINGS, errors="ignore") for p in (a, b))
    xr.testing.assert_equal(left, right)
    for dataset in (left, right):
        dataset.attrs.pop("provenance", None)
    assert left.attrs == right.attrs, a


def assert_same_weights(a: Path, b: Path) -> None:
    """The same checkpoint steps in two checkpoints folders, each with bit-identical weights."""
    mine, theirs = list_checkpoints(a), list_checkpoints(b)
    assert sorted(mine) == sorted(theirs), a
    for step, path in mine.items():
        left = torch.load(path, weights_only=True)["state_dict"]
        right = torch.load(theirs[step], weights_only=True)["state_dict"]
        assert all(torch.equal(left[key], right[key]) for key in left), (a, step)


def assert_same_outputs(first: Path, second: Path, experiment: str) -> None:
    """``results/{experiment}`` of two working directories hold the same results."""
    from PIL import Image

    a, b = first / "results" / experiment, second / "results" / experiment
    stores = zarr_stores(a)
    assert stores and stores == zarr_stores(b)
    for store in stores:
        assert_same_store(a / store, b / store)
    for run in sorted(path.parent for path in a.glob("runs/*/checkpoints")):
        assert_same_weights(run / "checkpoints", b / run.relative_to(a) / "checkpoints")
    claims = [json.loads((root / "claims.json").read_text())["claims"] for root in (a, b)]
    assert claims[0] == claims[1]
    figures = sorted(p.relative_to(a) for p in a.glob("figures/*.png"))
    assert figures and figures == sorted(p.relative_to(b) for p in b.glob("figures/*.png"))
    for figure in figures:
        with Image.open(a / figure) as left, Image.open(b / figure) as right:
            assert np.array_equal(np.asarray(left), np.asarray(right)), figure
