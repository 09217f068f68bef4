"""The ``llc`` rule's gather: per-run LLC stores stacked along ``M`` (and ``seed``) (xarray only, no torch)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr

from ..seeds import SEED, stack_seeds
from ._diagnostics import NO_ESTIMATE

__all__ = ["gather_llc_datasets"]


def gather_llc_datasets(datasets: Iterable[xr.Dataset], *, seed_axis: bool = False) -> xr.Dataset:
    """``llc.zarr``: the per-run LLC datasets stacked along a sorted ``M`` dim (and ``seed`` with a seed axis).

    Steps (and draws) missing in a run become NaN, its ``status`` :data:`NO_ESTIMATE`;
    the ``errors`` attributes of all runs are joined. With ``seed_axis`` every run names
    its train seed in the attribute ``train_seed``; each seed's runs are gathered along
    ``M``, then stacked along ``seed`` (``seeds.stack_seeds``), the SGLD seed (attribute
    ``seed``) becoming the ``(seed)`` variable ``sgld_seed``; variables get the dims
    ``(M, seed, step, …)``.
    """
    datasets = list(datasets)
    if not seed_axis:
        return _gather_over_M(datasets)
    by_seed: dict[int, list[xr.Dataset]] = {}
    for ds in datasets:
        if "train_seed" not in ds.attrs:
            raise ValueError("a run's llc.zarr has no 'train_seed' attribute; it was made before the seed axis: rebuild it")
        by_seed.setdefault(int(ds.attrs["train_seed"]), []).append(ds)
    gathered = []
    for seed, group in by_seed.items():
        one = _gather_over_M(group)
        one.attrs["train_seed"] = seed
        if SEED in one.attrs:
            one["sgld_seed"] = ((), int(one.attrs[SEED]))
        gathered.append(one)
    stacked = stack_seeds(gathered, lambda ds: int(ds.attrs["train_seed"]))
    stacked.attrs.pop("train_seed", None)
    order = {name: [d for d in ("M", SEED) if d in var.dims] for name, var in stacked.data_vars.items()}
    return stacked.assign({name: var.transpose(*order[name], ...) for name, var in stacked.data_vars.items()})


def _gather_over_M(datasets: list[xr.Dataset]) -> xr.Dataset:
    datasets = sorted(datasets, key=lambda d: float(d["M"]))
    errors = [e for d in datasets for e in d.attrs.get("errors", [])]
    combined = xr.concat(
        [d.expand_dims(M=[float(d["M"])]) for d in datasets], dim="M", join="outer", combine_attrs="override",
        fill_value={"status": NO_ESTIMATE, "failed_chains": -1, **{n: np.nan for n in datasets[0].data_vars
                                                                   if n not in ("status", "failed_chains")}},
    )
    combined["status"] = combined["status"].astype(np.int8)
    combined.attrs["errors"] = errors
    return combined
