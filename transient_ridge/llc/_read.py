"""The one reader of LLC stores: every estimate's numbers and status, and the one "final estimate".

Claims, every figure and the LLC-over-training report read ``llc.zarr`` (and
``llc_calibration.zarr``) through :func:`read_estimates`, so that there is one
definition of what an estimate's standard error and status are, and
:func:`final_estimate` is the one definition of a run's final estimate: its
record at the **last step it has a record for**, whatever that record says (a
failed final estimate is failed; an earlier checkpoint never stands in for the
final model).

The status is recomputed from the stored diagnostics with
:func:`~._diagnostics.estimate_status` (the stored ``status`` code is the same
function's value when the store was written), so a store written before a
diagnostic existed reads as "not converged" rather than as sound.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import xarray as xr

from ._diagnostics import NO_ESTIMATE, estimate_status

__all__ = ["Estimate", "Estimates", "read_estimates", "final_estimate", "estimate_at"]

# Per-estimate variables an LLC store may hold (a missing one reads as NaN).
_FIELDS = ("llc_mean", "llc_sem", "llc_std", "failed_chains", "trace_peak", "rhat", "half_z", "mala_acceptance",
           "init_loss", "loss", "loss_sem", "ridge_loss", "ridge_loss_sem", "loss_minus_ridge", "loss_minus_ridge_sem")


class Estimate(NamedTuple):
    """One LLC estimate as read from a store (NaN fields: not recorded; ``status`` ``None``: no record)."""

    mean: float
    status: str | None
    step: int | None
    trace_peak: float
    sem: float
    rhat: float
    half_z: float
    mala_acceptance: float
    failed_chains: float
    init_loss: float
    loss: float
    loss_sem: float
    ridge_loss: float
    ridge_loss_sem: float
    loss_minus_ridge: float
    loss_minus_ridge_sem: float

    @property
    def sound(self) -> bool:
        return self.status == "sound"


_NO_RECORD = Estimate(math.nan, None, None, *([math.nan] * 13))


@dataclasses.dataclass(frozen=True)
class Estimates:
    """Every estimate of a store as arrays over ``dims`` (``(M, step)`` for ``llc.zarr``).

    ``fields[name]`` holds each of :data:`_FIELDS` (float64, NaN where absent);
    ``status`` the status strings (``""`` where there is no record), ``recorded``
    whether there is a record (failed ones included).
    """

    dims: tuple[str, ...]
    coords: dict[str, np.ndarray]
    fields: dict[str, np.ndarray]
    status: np.ndarray
    recorded: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.fields[name]

    def estimate(self, index: tuple[int, ...]) -> Estimate:
        """The :class:`Estimate` at ``index`` (a tuple of positions along ``dims``)."""
        if not self.recorded[index]:
            return _NO_RECORD
        step = int(self.coords["step"][index[self.dims.index("step")]]) if "step" in self.dims else None
        f = {name: float(self.fields[name][index]) for name in _FIELDS}
        return Estimate(
            f["llc_mean"], str(self.status[index]), step, f["trace_peak"], f["llc_sem"], f["rhat"], f["half_z"],
            f["mala_acceptance"], f["failed_chains"], f["init_loss"], f["loss"], f["loss_sem"], f["ridge_loss"],
            f["ridge_loss_sem"], f["loss_minus_ridge"], f["loss_minus_ridge_sem"],
        )


def read_estimates(store: xr.Dataset | Estimates, dims: tuple[str, ...] = ("M", "step")) -> Estimates:
    """Every estimate of an LLC store over ``dims`` (transposed to that order), with its recomputed status.

    Args:
        store: ``llc.zarr`` (dims ``M, step``) or ``llc_calibration.zarr`` (pass
            ``("M", "step", "epsilon")`` after selecting one ``gamma``); an
            :class:`Estimates` already read over ``dims`` is returned as it is, so a
            caller that reads several things from one store reads it once.
        dims: the per-estimate dims, in the order wanted.

    Returns:
        :class:`Estimates`. A record exists where the stored ``status`` code is not
        ``NO_ESTIMATE`` (stores without it: where ``failed_chains`` is a count ≥ 0,
        else where ``llc_mean`` is finite).
    """
    if isinstance(store, Estimates):
        if store.dims != tuple(dims):
            raise ValueError(f"estimates read over {store.dims}, asked for {tuple(dims)}")
        return store
    shape = tuple(store.sizes[d] for d in dims)

    def values(name: str) -> np.ndarray:
        if name not in store:
            return np.full(shape, np.nan)
        return store[name].transpose(*dims).values.astype(np.float64)

    fields = {name: values(name) for name in _FIELDS}
    if "status" in store:
        recorded = store["status"].transpose(*dims).values.astype(np.int64) != NO_ESTIMATE
    elif "failed_chains" in store:
        recorded = fields["failed_chains"] >= 0  # NaN (outer-joined) compares False
    else:
        recorded = np.isfinite(fields["llc_mean"])
    status = estimate_status(fields["llc_mean"], fields["failed_chains"], fields["trace_peak"], fields["rhat"],
                             fields["half_z"])
    return Estimates(
        dims=tuple(dims), coords={d: np.asarray(store[d].values) for d in dims if d in store.coords},
        fields=fields, status=np.where(recorded, status, ""), recorded=recorded,
    )


def final_estimate(llc: xr.Dataset | Estimates, M: float) -> Estimate:
    """Run ``M``'s final estimate: its record at the last step it has one for (module docstring).

    Returns the :class:`Estimate` (its first four fields are ``mean, status, step,
    trace_peak``); with no record at all, NaN numbers and ``status``/``step`` ``None``.
    """
    table = read_estimates(llc)
    i = _row(table, M)
    if i is None:
        return _NO_RECORD
    recorded = np.flatnonzero(table.recorded[i])
    return table.estimate((i, int(recorded[-1]))) if recorded.size else _NO_RECORD


def estimate_at(llc: xr.Dataset | Estimates, M: float, step: int) -> Estimate:
    """Run ``M``'s estimate at ``step`` (no record: NaN numbers, ``status`` ``None``)."""
    table = read_estimates(llc)
    i = _row(table, M)
    steps = table.coords["step"]
    if i is None or int(step) not in set(steps.tolist()):
        return _NO_RECORD
    return table.estimate((i, int(np.flatnonzero(steps == int(step))[0])))


def _row(table: Estimates, M: float) -> int | None:
    hits = np.flatnonzero(table.coords["M"].astype(np.float64) == float(M))
    return int(hits[0]) if hits.size else None
