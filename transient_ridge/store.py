"""The one place that decides how xarray datasets go to and come from zarr.

zarr v3 with xarray has two switches that must agree between writer and
reader (``zarr_format`` and ``consolidated``); they are fixed here. Writes go
to a temporary sibling and are renamed into place, so a killed job never
leaves a half-written store under the final name.
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from . import __version__
from .provenance import current_stamp
from .run_files import replace_directory
from .runtime import one_line

__all__ = ["ZARR_FORMAT", "StoreError", "write_dataset", "open_dataset", "provenance_attrs", "replace_directory"]

ZARR_FORMAT = 3
CONSOLIDATED = False


class StoreError(RuntimeError):
    """A zarr store that exists but cannot be read (truncated, damaged or not a store)."""


def provenance_attrs(experiment: str, config_json: str) -> dict[str, Any]:
    """Attributes every store carries: experiment name, its config (JSON), the code version
    and a ``provenance`` stamp (commit, rule, stage settings hash, versions, UTC time; see
    :mod:`transient_ridge.provenance`). :func:`write_dataset` renews the stamp at write time.
    """
    return {
        "experiment": experiment,
        "config": config_json,
        "code_version": __version__,
        "provenance": current_stamp(),
    }


def _clean_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Make attributes JSON-safe (zarr v3 stores attrs as JSON; ∞ is not JSON)."""
    clean: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # "inf" / "nan"; read back with float(...)
        elif isinstance(value, (list, tuple, dict)):
            value = json.loads(json.dumps(value, default=str))
        clean[key] = value
    return clean


def write_dataset(dataset: xr.Dataset, path: str | Path) -> None:
    """Write ``dataset`` to a zarr store at ``path`` atomically (temporary sibling, then rename).

    The ``provenance`` attribute is set to this process's stamp, replacing one
    copied from an input store (evaluate and pca start from their inputs' attrs).
    Temporaries of ``path`` left by a killed writer are removed first (Snakemake
    runs one job per output, so no other writer of ``path`` is running).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a killed writer (one job writes a path)
        shutil.rmtree(stale, ignore_errors=True)
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    dataset = dataset.copy()
    dataset.attrs = _clean_attrs({**dataset.attrs, "provenance": current_stamp()})
    for name in dataset.variables:
        dataset[name].attrs = _clean_attrs(dataset[name].attrs)
        dataset[name].encoding = {}
    try:
        dataset.to_zarr(temporary, mode="w", zarr_format=ZARR_FORMAT, consolidated=CONSOLIDATED)
        replace_directory(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def open_dataset(path: str | Path, *, load: bool = True) -> xr.Dataset:
    """Open a store written by :func:`write_dataset` (loaded into memory unless ``load=False``).

    Raises ``FileNotFoundError`` when there is no store and :class:`StoreError` (one
    line: the path, the cause and the way out) when it cannot be read. With
    ``load=False`` only the metadata is read here; damaged chunks show later.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no zarr store at {path}; build it with snakemake first")
    try:
        with warnings.catch_warnings():
            # Snakemake marks directory() outputs with a `.snakemake_timestamp` file that zarr does not know.
            warnings.filterwarnings("ignore", message=r"Object at \.snakemake_timestamp")
            dataset = xr.open_zarr(path, zarr_format=ZARR_FORMAT, consolidated=CONSOLIDATED)
            return dataset.load() if load else dataset
    except Exception as error:  # zarr, numcodecs and json each raise their own kind on a damaged file
        raise StoreError(
            f"{path}: cannot read this zarr store ({one_line(error)}); it is truncated or damaged. "
            f"Delete it and rerun Snakemake, which rebuilds it: rm -r {path}"
        ) from error
