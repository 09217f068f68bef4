"""The seed axis downstream of training: grouping runs by M, stacking seeds, picking one seed.

An experiment whose ``seeds.train`` is a list has one run per (M, train seed). The
per-run stores (``outputs.zarr``, the per-run ``llc.zarr``) stay per run; the stages
that read every run (PCA, LLC gather, claims, figures) stack each M's runs along a
``seed`` dim (int coordinate, the train seeds in ascending order). An experiment
with one train seed has no ``seed`` dim anywhere: its stores keep their one-seed
layout. Everything here is numpy/xarray only.

    runs = runs_by_M([open_dataset(p) for p in paths], seed_axis=True)   # M -> (seed, step, ...)
    for seed in seeds_of(runs):
        one = select_seed(runs, seed)                                    # M -> (step, ...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import xarray as xr

from .config import format_task_count

__all__ = [
    "SEED",
    "runs_by_M",
    "seeds_of",
    "select_seed",
    "stack_seeds",
    "seed_band",
]

SEED = "seed"  # the dim (and int coordinate) of the train seed


def _describe(M: float) -> str:
    return f"M={format_task_count(M)}"


def stack_seeds(datasets: Iterable[xr.Dataset], seed_of: Callable[[xr.Dataset], int]) -> xr.Dataset:
    """Stack datasets of one M along a new ``seed`` dim (ascending seeds).

    ``t_crit`` becomes a ``(seed)`` variable; other attributes that differ between
    seeds (``seed``, provenance) are dropped; shared ones (``M``, the experiment,
    precision) are kept. All runs must share their
    coordinates (the same checkpoint steps): a mismatch raises ``ValueError``.
    """
    datasets = sorted(datasets, key=seed_of)
    seeds = [int(seed_of(ds)) for ds in datasets]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"two runs with the same train seed among {seeds}; each (M, seed) must appear once")
    expanded = []
    for ds, seed in zip(datasets, seeds):
        ds = ds.copy()
        if "t_crit" in ds.attrs:
            ds["t_crit"] = ((), int(ds.attrs.pop("t_crit")))
        expanded.append(ds.expand_dims({SEED: [seed]}))
    try:
        return xr.concat(expanded, dim=SEED, join="exact", combine_attrs="drop_conflicts")
    except ValueError as exc:
        raise ValueError(
            f"runs of seeds {seeds} cannot be stacked: {exc}; every seed of an experiment must be trained "
            "with the same checkpoint schedule (rebuild the stale runs)"
        ) from exc


def runs_by_M(runs: Iterable[xr.Dataset], *, seed_axis: bool) -> dict[float, xr.Dataset]:
    """Every run's dataset by its ``M`` attribute, sorted (∞ last).

    With ``seed_axis``, each M's runs are stacked along ``seed`` (their ``seed``
    attribute; :func:`stack_seeds`), and every M must have the same seeds. Without
    it, each M must have exactly one run. Raises ``ValueError`` naming the M otherwise.
    """
    grouped: dict[float, list[xr.Dataset]] = {}
    for ds in runs:
        if "M" not in ds.attrs:
            raise ValueError("a run's dataset has no 'M' attribute; is it a run's outputs.zarr?")
        grouped.setdefault(float(ds.attrs["M"]), []).append(ds)
    result: dict[float, xr.Dataset] = {}
    for M in sorted(grouped):
        group = grouped[M]
        if not seed_axis:
            if len(group) > 1:
                raise ValueError(
                    f"{len(group)} runs for {_describe(M)} in an experiment without a seed axis; "
                    "pass seed_axis=True when seeds.train is a list"
                )
            result[M] = group[0]
            continue
        missing = [i for i, ds in enumerate(group) if SEED not in ds.attrs]
        if missing:
            raise ValueError(f"a run of {_describe(M)} has no 'seed' attribute; it was made before the seed axis: rebuild it")
        result[M] = stack_seeds(group, lambda ds: int(ds.attrs[SEED]))
    if seed_axis:
        seed_sets = {M: tuple(ds[SEED].values.tolist()) for M, ds in result.items()}
        if len(set(seed_sets.values())) > 1:
            listed = ", ".join(f"{_describe(M)}: {list(s)}" for M, s in seed_sets.items())
            raise ValueError(f"the runs have different seeds per M ({listed}); every M needs every train seed")
    return result


def seeds_of(*stores: Mapping[float, xr.Dataset] | xr.Dataset | None) -> list[int] | None:
    """The train seeds of the given stores (``seed`` coordinate), or ``None`` when none has a seed dim.

    Accepts run mappings (``M → dataset``) and single datasets; all that have a
    ``seed`` dim must agree.
    """
    found: list[tuple[int, ...]] = []
    for store in stores:
        if store is None:
            continue
        datasets = [store] if isinstance(store, xr.Dataset) else store.values()  # a Dataset is a Mapping too
        for ds in datasets:
            if SEED in ds.dims:
                found.append(tuple(int(s) for s in ds[SEED].values))
    if not found:
        return None
    if len(set(found)) > 1:
        raise ValueError(f"stores disagree on the train seeds: {sorted(set(found))}")
    return list(found[0])


def select_seed(
    store: Mapping[float, xr.Dataset] | xr.Dataset | None, seed: int
) -> dict[float, xr.Dataset] | xr.Dataset | None:
    """One seed's view: a dataset, or every dataset of an ``M → dataset`` mapping, at ``seed``.

    The ``seed`` dim is dropped, so the result has the one-seed layout (stacked
    ``t_crit`` goes back to an attribute). Datasets without a seed dim pass through.
    """
    if store is None:
        return None
    if not isinstance(store, xr.Dataset):  # an M -> dataset mapping (a Dataset is a Mapping too)
        return {M: select_seed(ds, seed) for M, ds in store.items()}
    if SEED not in store.dims:
        return store
    one = store.sel({SEED: seed}).drop_vars(SEED)
    if "t_crit" in one.data_vars and one["t_crit"].ndim == 0:
        one.attrs["t_crit"] = int(one["t_crit"])
        one = one.drop_vars("t_crit")
    return one


def seed_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, minimum and maximum over seeds of ``values (seed, ...)``, ignoring NaN.

    A position where every seed is NaN stays NaN (no warning).
    """
    values = np.asarray(values, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    median, low, high = (np.full(values.shape[1:], np.nan) for _ in range(3))
    some = np.isfinite(values).any(axis=0)  # positions with at least one finite seed
    if some.any():
        median[some] = np.nanmedian(values[:, some], axis=0)
        low[some] = np.nanmin(values[:, some], axis=0)
        high[some] = np.nanmax(values[:, some], axis=0)
    return median, low, high
