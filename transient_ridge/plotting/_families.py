"""What a run is nearest over training: distances to ridge, dMMSE_M and the fitted predictor families.

One block per M: on top the OOD distances (to ridge, to dMMSE_M, to the nearest
ridge_λ and the nearest GD-k member), below the fitted parameters (λ of the
nearest ridge_λ, k·η of the nearest GD-k) on the grids of ``families``. Runs
stacked over seeds are drawn as the seed median over a min–max band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..seeds import SEED
from ..smoothing import smooth
from ._inputs import require_vars
from ._style import (
    DOUBLE_WIDTH,
    GD_COLOR,
    PROXY_GREY,
    RIDGE_LAMBDA_COLOR,
    SINGLE_WIDTH,
    Color,
    add_marker_legend,
    format_M,
    new_figure,
    proxy,
    set_log_y,
    set_step_axis,
)
from ._training import BAND_ALPHA, draw_series, n_seeds, t_crit_index

__all__ = ["FAMILY_FIT_VARIABLES", "FAMILY_FIT_PROBE", "fig_predictor_fit"]

FAMILY_FIT_VARIABLES = ("family_dist", "fit_ridge_penalty", "fit_gd_step_size", "fit_gd_steps", "loss_ood")
FAMILY_FIT_PROBE = "ood"  # the probe set drawn (the store holds "id" too)
_MAX_COLUMNS = 5  # M blocks per row before wrapping

# (family label in the store, legend text, colour, line style)
_DISTANCES = (
    ("ridge", "ridge ($\\lambda = \\sigma^2$)", "black", "--"),
    ("dmmse", "dMMSE$_M$", "0.55", ":"),
    ("ridge_lambda", "nearest ridge$_\\lambda$", RIDGE_LAMBDA_COLOR, "-"),
    ("gd_k", "nearest GD-$k$", GD_COLOR, "-"),
)


def _values(da: xr.DataArray) -> np.ndarray:
    """``(step)`` or, stacked over seeds, ``(seed, step)`` float64 values."""
    dims = (SEED, "step") if SEED in da.dims else ("step",)
    return np.asarray(da.transpose(*dims).values, dtype=np.float64)


def _smoothed(da: xr.DataArray, window: int) -> np.ndarray:
    values = _values(da)
    return smooth(values, window, axis=values.ndim - 1)


def _grid_bounds(ds: xr.Dataset) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """The λ range and the k·η range the fit searched (None where the store lacks the grid)."""
    lam = (float(ds["ridge_penalty"].min()), float(ds["ridge_penalty"].max())) if "ridge_penalty" in ds.coords else None
    if "gd_step_size" in ds.coords and "gd_steps" in ds.coords:
        eta, k = ds["gd_step_size"].values, ds["gd_steps"].values
        return lam, (float(eta.min() * k.min()), float(eta.max() * k.max()))
    return lam, None


def _draw_block(
    ax_dist: Axes, ax_fit: Axes, ds: xr.Dataset, M: float, color: Color, window: int, noise_variance: float | None
) -> None:
    """One M: distances on top (smoothed like every time series), fitted parameters below (raw)."""
    at = ds.sel(probe=FAMILY_FIT_PROBE)
    steps = np.asarray(ds["step"].values)
    for family, _, line_color, style in _DISTANCES:
        values = _smoothed(at["family_dist"].sel(family=family), window)
        draw_series(ax_dist, steps, values, line_color, 1.0, linestyle=style, zorder=3 if family == "ridge_lambda" else 2)
    lam = _values(at["fit_ridge_penalty"])
    gd_time = _values(at["fit_gd_steps"] * at["fit_gd_step_size"])
    draw_series(ax_fit, steps, lam, RIDGE_LAMBDA_COLOR, 1.0, zorder=3)
    draw_series(ax_fit, steps, gd_time, GD_COLOR, 1.0, zorder=2)
    if noise_variance is not None:
        ax_fit.axhline(noise_variance, color="black", linestyle="--", linewidth=0.8, zorder=1)
    lam_bounds, gd_bounds = _grid_bounds(ds)
    for bounds, bound_color in ((lam_bounds, RIDGE_LAMBDA_COLOR), (gd_bounds, GD_COLOR)):
        for value in bounds or ():
            ax_fit.axhline(value, color=bound_color, linestyle=(0, (1, 2)), linewidth=0.6, alpha=0.7, zorder=1)
    i = t_crit_index(ds, steps)
    if i is not None:
        for ax in (ax_dist, ax_fit):
            ax.axvline(steps[i], color=color, linestyle="-", linewidth=2.5, alpha=0.25, zorder=0)
    ax_dist.set_title(f"$M$ = {format_M(M)}", pad=2, color=color if not math.isinf(M) else "black")
    for ax in (ax_dist, ax_fit):
        set_log_y(ax)
        set_step_axis(ax, label=False)


def fig_predictor_fit(outputs: Mapping[float, xr.Dataset], colors: Mapping[float, Color], window: int) -> Figure:
    """Distances over training to ridge, dMMSE_M and the nearest ridge_λ / GD-k member, and the fitted λ and k·η.

    Args:
        outputs: ``M → outputs.zarr`` with the fitted-family variables (``family_dist``,
            ``fit_*`` over ``step`` and ``probe``), stacked over seeds or not.
        colors: the M colours (panel titles and the ``t_crit`` line).
        window: smoothing window of the distance series (the fitted parameters are drawn raw).

    σ² (the attribute ``noise_variance`` of ``fit_ridge_penalty``) is drawn as the reference λ.
    """
    for ds in outputs.values():
        require_vars(ds, "fig_predictor_fit", "outputs", FAMILY_FIT_VARIABLES)
    found = {float(ds["fit_ridge_penalty"].attrs["noise_variance"]) for ds in outputs.values()
             if "noise_variance" in ds["fit_ridge_penalty"].attrs}
    noise_variance = found.pop() if len(found) == 1 else None
    Ms = list(outputs)
    ncols = min(_MAX_COLUMNS, len(Ms))
    block_rows = math.ceil(len(Ms) / ncols)
    width = DOUBLE_WIDTH if ncols > 2 else SINGLE_WIDTH * (1.0 if ncols == 1 else 1.5)
    fig = new_figure(width, 2.6 * block_rows + 0.9)
    grid = fig.add_gridspec(2 * block_rows, ncols, height_ratios=[1.3, 1.0] * block_rows)
    first_dist: Axes | None = None
    first_fit: Axes | None = None
    for index, M in enumerate(Ms):
        row, col = 2 * (index // ncols), index % ncols
        ax_dist = fig.add_subplot(grid[row, col], sharey=first_dist)
        ax_fit = fig.add_subplot(grid[row + 1, col], sharex=ax_dist, sharey=first_fit)
        first_dist, first_fit = first_dist or ax_dist, first_fit or ax_fit
        _draw_block(ax_dist, ax_fit, outputs[M], M, colors[M], window, noise_variance)
        ax_dist.tick_params(labelbottom=False)
        if col == 0:
            ax_dist.set_ylabel(f"{FAMILY_FIT_PROBE.upper()} distance to")
            ax_fit.set_ylabel("fitted value")
        else:
            ax_dist.tick_params(labelleft=False)
            ax_fit.tick_params(labelleft=False)
        if index + ncols >= len(Ms):  # nothing drawn below: label the step axis here
            ax_fit.set_xlabel("training step")
    handles: dict[str, Any] = {label: proxy({}, color=c, linestyle=s) for _, label, c, s in _DISTANCES}
    handles["$\\lambda$ of nearest ridge$_\\lambda$"] = proxy({}, color=RIDGE_LAMBDA_COLOR, linestyle="-")
    handles["$k\\eta$ of nearest GD-$k$"] = proxy({}, color=GD_COLOR, linestyle="-")
    if noise_variance is not None:
        handles["$\\sigma^2$ (ridge's $\\lambda$)"] = proxy({}, color="black", linestyle="--", linewidth=0.8)
    handles["grid bounds"] = proxy({}, color=PROXY_GREY, linestyle=(0, (1, 2)), linewidth=0.6)
    handles["$t_{\\mathrm{crit}}$"] = Patch(facecolor=PROXY_GREY, alpha=0.4, edgecolor="none")
    if n_seeds(outputs):
        handles[f"median over {n_seeds(outputs)} seeds; band: min–max"] = Patch(
            facecolor=PROXY_GREY, alpha=BAND_ALPHA * 2, edgecolor="none"
        )
    add_marker_legend(fig, handles, ncols=5)
    return fig
