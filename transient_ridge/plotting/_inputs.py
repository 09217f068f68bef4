"""What a figure reads (the stores of docs/stores.md) and how it is tuned (settings)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "STORE_PATHS",
    "FigureInputs",
    "FigureSettings",
    "MissingStoreError",
    "parse_predictor_M",
    "require_vars",
]

STORE_NAMES = ("outputs", "baselines", "pca", "llc", "llc_calibration")
STORE_PATHS = {
    "outputs": "results/{exp}/runs/M{M}/outputs.zarr",
    "baselines": "results/{exp}/baselines.zarr",
    "pca": "results/{exp}/pca.zarr",
    "llc": "results/{exp}/llc.zarr",
    "llc_calibration": "results/{exp}/llc_calibration.zarr",
}


class MissingStoreError(ValueError):
    """A figure was asked for without a store it needs."""


@dataclass(frozen=True, eq=False)  # datasets do not compare to a bool
class FigureInputs:
    """The opened stores a figure is drawn from; only the ones it needs must be set.

    Attributes:
        outputs: ``M → outputs.zarr`` dataset of that run (keys are floats, ``inf`` for ∞).
        baselines: ``baselines.zarr``.
        pca: ``pca.zarr``.
        llc: ``llc.zarr``.
        llc_calibration: ``llc_calibration.zarr``.
    """

    outputs: Mapping[float, xr.Dataset] = field(default_factory=dict)
    baselines: xr.Dataset | None = None
    pca: xr.Dataset | None = None
    llc: xr.Dataset | None = None
    llc_calibration: xr.Dataset | None = None

    def __post_init__(self) -> None:
        runs = {float(M): ds for M, ds in self.outputs.items()}
        if len(runs) != len(self.outputs):
            raise ValueError(f"outputs has duplicate M values: {sorted(self.outputs)}")
        object.__setattr__(self, "outputs", dict(sorted(runs.items())))  # ∞ sorts last

    def require(self, figure: str, store: str) -> None:
        """Raise ``MissingStoreError`` naming ``figure`` and ``store`` if the store is absent."""
        if store not in STORE_NAMES:
            raise ValueError(f"unknown store {store!r}; known stores: {', '.join(STORE_NAMES)}")
        value = getattr(self, store)
        if value is None or (store == "outputs" and not value):
            what = "no run's outputs.zarr was given" if store == "outputs" else f"{store} is None"
            raise MissingStoreError(
                f"figure {figure!r} needs the store {store!r} ({STORE_PATHS[store]}), but {what}; "
                f"open it with transient_ridge.store.open_dataset and pass it as "
                f"FigureInputs({store}=...)"
            )

    def M_values(self) -> set[float]:
        """Every M any given store mentions (runs, baselines, PCA runs and predictors, LLC)."""
        Ms: set[float] = set(self.outputs)
        for ds in (self.baselines, self.pca, self.llc, self.llc_calibration):
            if ds is not None and "M" in ds.coords:
                Ms.update(float(m) for m in np.atleast_1d(ds["M"].values))
        if self.pca is not None and "predictor" in self.pca.coords:
            for label in self.pca["predictor"].values:
                M = parse_predictor_M(str(label))
                if M is not None:
                    Ms.add(M)
        return Ms


def parse_predictor_M(label: str) -> float | None:
    """``"dmmse_M16"`` → 16.0; ``"ridge"`` (or anything else) → None."""
    prefix = "dmmse_M"
    if not label.startswith(prefix):
        return None
    try:
        return float(label[len(prefix) :])
    except ValueError:
        return None


def require_vars(ds: xr.Dataset, figure: str, store: str, names: Iterable[str]) -> None:
    """Raise a ``KeyError`` that names the figure, the store and what it does have."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise KeyError(
            f"figure {figure!r} needs {missing} in the store {store!r} "
            f"({STORE_PATHS[store]}); it has {sorted(map(str, ds.data_vars))}"
        )


@dataclass(frozen=True)
class FigureSettings:
    """How figures are drawn (``params.settings`` in the workflow).

    Attributes:
        smoothing_window: odd number of checkpoints in the centred moving average
            applied to every time series (losses, distances, PCA trajectories);
            1 draws the raw values.
        raw: draw raw values whatever ``smoothing_window`` says (the raw variants).
        M_values: the whole sweep grid, so that the colour of an M is the same in
            a figure that shows only some of them (e.g. LLC on a subset);
            default: every M the figure's stores mention.
        max_pcs: how many leading PCs the appendix PCA figures show (≥ 2).
        llc_error: error bars of LLC estimates: ``"std"`` (across chains) or
            ``"sem"`` (std / √(healthy chains)).
    """

    smoothing_window: int = 1
    raw: bool = False
    M_values: tuple[float, ...] | None = None
    max_pcs: int = 4
    llc_error: str = "std"

    def __post_init__(self) -> None:
        w = self.smoothing_window
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 or w % 2 == 0:
            raise ValueError(
                f"settings smoothing_window={w!r} must be an odd integer ≥ 1 (1 = raw); "
                f"e.g. 1, 3, 5"
            )
        if not isinstance(self.raw, (bool, np.bool_)):
            raise ValueError(f"settings raw={self.raw!r} must be true or false")
        if isinstance(self.max_pcs, bool) or not isinstance(self.max_pcs, (int, np.integer)) or self.max_pcs < 2:
            raise ValueError(f"settings max_pcs={self.max_pcs!r} must be an integer ≥ 2")
        if self.llc_error not in ("std", "sem"):
            raise ValueError(f"settings llc_error={self.llc_error!r} must be 'std' or 'sem'")
        if self.M_values is not None:
            Ms = tuple(float(m) for m in self.M_values)  # accepts "inf" strings from configs
            if any(math.isnan(m) or m <= 0 for m in Ms):
                raise ValueError(f"settings M_values={list(self.M_values)} must be positive numbers or inf")
            object.__setattr__(self, "M_values", Ms)

    @property
    def window(self) -> int:
        """The smoothing window actually used (1 when ``raw``)."""
        return 1 if self.raw else int(self.smoothing_window)

    @classmethod
    def coerce(cls, settings: FigureSettings | Mapping[str, Any] | None) -> FigureSettings:
        """Accept a ``FigureSettings``, a plain mapping (from the config) or None (defaults)."""
        if settings is None:
            return cls()
        if isinstance(settings, cls):
            return settings
        if not isinstance(settings, Mapping):
            raise TypeError(f"settings must be a mapping or FigureSettings, not {type(settings).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown figure settings {unknown}; allowed keys: {sorted(known)}")
        return cls(**settings)
