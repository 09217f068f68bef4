"""Synthetic fitted-family variables for outputs stores (the layout of transient_ridge.families)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from transient_ridge.families import FAMILIES, PROBES

PENALTIES = np.geomspace(0.01, 100.0, 9)
STEP_SIZES = np.geomspace(0.05, 1.0, 4)
GD_STEPS = np.array([1, 2, 4, 8])
NOISE_VARIANCE = 0.125


def with_family_fit(ds: xr.Dataset, seed: int = 0) -> xr.Dataset:
    """``ds`` (an outputs dataset with ``dist_ridge``, ``dist_dmmse`` over ``step``) plus the family fit.

    The distances to ridge and dMMSE_M on both probe sets are the store's own; the nearest ridge_λ
    and GD-k sit at 0.7 and 0.8 of the distance to ridge; fitted values are grid points.
    """
    rng = np.random.default_rng(seed)
    n_steps = ds.sizes["step"]
    ridge, dmmse = ds["dist_ridge"].values, ds["dist_dmmse"].values
    per_family = np.stack([ridge, dmmse, 0.7 * ridge, 0.8 * ridge, 10 + 0 * ridge], axis=-1)  # (step, family)
    family_dist = np.repeat(per_family[:, None, :], len(PROBES), axis=1)
    shape = (n_steps, len(PROBES))
    fit = xr.Dataset(
        {
            "family_dist": (("step", "probe", "family"), family_dist),
            "fit_ridge_penalty": (("step", "probe"), rng.choice(PENALTIES, size=shape)),
            "fit_gd_step_size": (("step", "probe"), rng.choice(STEP_SIZES, size=shape)),
            "fit_gd_steps": (("step", "probe"), rng.choice(GD_STEPS, size=shape).astype(np.float64)),
            "dist_ridge_lambda": (("step", "probe", "ridge_penalty"), rng.random((*shape, len(PENALTIES)))),
            "dist_gd_k": (("step", "probe", "gd_step_size", "gd_steps"), rng.random((*shape, 4, 4))),
        },
        coords={
            "step": ds["step"].values,
            "probe": np.array(PROBES, dtype=object),
            "family": np.array(FAMILIES, dtype=object),
            "ridge_penalty": PENALTIES,
            "gd_step_size": STEP_SIZES,
            "gd_steps": GD_STEPS,
        },
    )
    fit["fit_ridge_penalty"].attrs["noise_variance"] = NOISE_VARIANCE
    return ds.merge(fit)
