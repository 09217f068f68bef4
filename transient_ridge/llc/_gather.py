"""The ``llc`` rule's gather: per-run LLC stores stacked along ``M`` (xarray only, no torch)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr

from ._diagnostics import NO_ESTIMATE

__all__ = ["gather_llc_datasets"]


def gather_llc_datasets(datasets: Iterable[xr.Dataset]) -> xr.Dataset:
    """Stack per-run LLC datasets along a sorted ``M`` dim.

    Steps (and draws) missing in a run become NaN, its ``status`` :data:`NO_ESTIMATE`;
    the ``errors`` attributes of all runs are joined.
    """
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
