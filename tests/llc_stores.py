"""Hand-made LLC stores for tests of the claims, the figures and the reports (the layout of docs/stores.md)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from transient_ridge.llc import estimate_status
from transient_ridge.llc._diagnostics import status_code


def llc_store(
    mean,
    *,
    M,
    steps,
    sem=0.1,
    chains: int = 4,
    draws: int = 6,
    init_loss: float = 0.25,
    loss=None,
    ridge_loss=None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """An ``llc.zarr`` with every estimate sound unless changed afterwards.

    ``mean`` is ``(M, step)`` (NaN: no record there). Per-chain estimates spread
    by ``sem`` around the mean; traces sit at 2x ``init_loss``; R-hat 1, half z 0,
    MALA 0.6; ``loss``/``ridge_loss`` ``(M, step)`` default to 0.5 and 1.0 with
    s.e. 0.01 (paired difference s.e. 0.01). Call :func:`restatus` after editing
    diagnostics to refresh the stored status code.
    """
    mean = np.asarray(mean, dtype=np.float64)
    shape = mean.shape
    recorded = np.isfinite(mean)
    offsets = np.linspace(-1.0, 1.0, chains) * sem * np.sqrt(chains) / np.std(np.linspace(-1.0, 1.0, chains), ddof=1)
    llc_chain = mean[..., None] + offsets
    loss = np.full(shape, 0.5) if loss is None else np.asarray(loss, dtype=np.float64)
    ridge_loss = np.full(shape, 1.0) if ridge_loss is None else np.asarray(ridge_loss, dtype=np.float64)
    where = lambda values, fill=np.nan: np.where(recorded, values, fill)  # noqa: E731
    dims = ("M", "step")
    ds = xr.Dataset(
        {
            "llc_mean": (dims, mean),
            "llc_std": (dims, where(np.full(shape, sem * np.sqrt(chains)))),
            "llc_sem": (dims, where(np.full(shape, float(sem)))),
            "llc_chain": ((*dims, "chain"), np.where(recorded[..., None], llc_chain, np.nan)),
            "init_loss": (dims, where(np.full(shape, init_loss))),
            "loss_trace": ((*dims, "chain", "draw"),
                           np.where(recorded[..., None, None], np.full((*shape, chains, draws), 2 * init_loss), np.nan)),
            "failed_chains": (dims, where(np.zeros(shape), -1).astype(np.int64)),
            "trace_peak": (dims, where(np.full(shape, 2.0))),
            "rhat": (dims, where(np.ones(shape))),
            "half_z": (dims, where(np.zeros(shape))),
            "mala_acceptance": (dims, where(np.full(shape, 0.6))),
            "loss": (dims, where(loss)),
            "loss_sem": (dims, where(np.full(shape, 0.01))),
            "ridge_loss": (dims, where(ridge_loss)),
            "ridge_loss_sem": (dims, where(np.full(shape, 0.01))),
            "loss_minus_ridge": (dims, where(loss - ridge_loss)),
            "loss_minus_ridge_sem": (dims, where(np.full(shape, 0.01))),
        },
        coords={"M": np.asarray(M, dtype=np.float64), "step": np.asarray(steps), "chain": np.arange(chains),
                "draw": np.arange(draws)},
        attrs={"epsilon": 3e-4, "epsilon_source": "config", "gamma": 100.0, "nbeta": 30.0, "num_chains": chains,
               "num_burnin": 2, "num_draws": draws - 2, **(attrs or {})},
    )
    return restatus(ds)


def restatus(ds: xr.Dataset) -> xr.Dataset:
    """Set the stored ``status`` code from the store's diagnostics (-1 where there is no record)."""
    status = estimate_status(ds["llc_mean"].values, ds["failed_chains"].values, ds["trace_peak"].values,
                             ds["rhat"].values, ds["half_z"].values)
    recorded = ds["failed_chains"].values >= 0
    ds["status"] = (ds["llc_mean"].dims, np.where(recorded, status_code(status), -1).astype(np.int8))
    return ds
