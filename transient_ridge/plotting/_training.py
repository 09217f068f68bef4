"""Quantities over training: OOD loss (Fig. 1a), distances (Fig. 1b), ID loss (App. B).

A run stacked over train seeds (a ``seed`` dim, :mod:`transient_ridge.seeds`) is
drawn as the median over its seeds with a shaded min–max band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.patches import Patch
from numpy.typing import NDArray

from ..seeds import SEED, seed_band
from ..smoothing import smooth
from ._style import (
    DOUBLE_WIDTH,
    END,
    END_LABEL,
    PROXY_GREY,
    SINGLE_WIDTH,
    T_CRIT,
    Color,
    add_marker_legend,
    format_M,
    new_figure,
    proxy,
    set_log_y,
    set_step_axis,
)

__all__ = [
    "BAND_ALPHA",
    "band_handles",
    "draw_distances",
    "draw_ood_loss",
    "draw_series",
    "figB_id_loss",
    "n_seeds",
    "series",
    "t_crit_index",
    "t_crit_label",
]

Handles = dict[str, Any]
BAND_ALPHA = 0.22  # opacity of the min–max band over seeds


def series(ds: xr.Dataset, var: str, window: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """``(steps, smoothed values)`` of a ``(step)`` variable of an outputs dataset.

    For runs stacked over seeds the values are ``(seed, step)``, each seed smoothed on its own.
    """
    da = ds[var]
    steps = np.asarray(da["step"].values)
    if SEED in da.dims:
        values = np.asarray(da.transpose(SEED, "step").values, dtype=np.float64)
        return steps, smooth(values, window, axis=1)
    return steps, smooth(np.asarray(da.values, dtype=np.float64), window)


def n_seeds(outputs: Mapping[float, xr.Dataset]) -> int:
    """The number of train seeds the runs are stacked over (0 without a seed dim)."""
    return max((ds.sizes.get(SEED, 0) for ds in outputs.values()), default=0)


def draw_series(
    ax: Axes, steps: Any, values: NDArray[np.float64], color: Color, M: float, **kwargs: Any
) -> NDArray[np.float64]:
    """A run's series as a line, or for ``(seed, step)`` values the seed median over a min–max band.

    Returns the drawn line's values ``(step)`` (the median with seeds), where markers go.
    """
    if values.ndim == 2:
        median, low, high = seed_band(values)
        ax.fill_between(steps, low, high, color=color, alpha=BAND_ALPHA, linewidth=0, zorder=1)
        values = median
    # M = ∞ is drawn slightly thinner so that it does not hide the finite M beneath it.
    ax.plot(steps, values, color=color, linewidth=0.8 if math.isinf(M) else 1.0, **kwargs)
    return values


def band_handles(outputs: Mapping[float, xr.Dataset]) -> Handles:
    """The legend entry of the seed band, when the runs have seeds."""
    n = n_seeds(outputs)
    if not n:
        return {}
    return {f"median over {n} seeds; band: min–max": Patch(facecolor=PROXY_GREY, alpha=0.5, edgecolor="none")}


def t_crit_label(outputs: Mapping[float, xr.Dataset]) -> str:
    """Legend text of the ``t_crit`` star (with seeds: the minimum of the median OOD loss)."""
    if n_seeds(outputs):
        return "$t_{\\mathrm{crit}}$ (min. of the median OOD loss)"
    return "$t_{\\mathrm{crit}}$ (min. OOD loss)"


def t_crit_index(ds: xr.Dataset, steps: NDArray[np.int64]) -> int | None:
    """Index of the checkpoint nearest the run's ``t_crit`` attribute.

    Falls back to the raw OOD-loss minimum when the attribute is missing; for runs
    stacked over seeds it is the minimum of the median (over seeds) raw OOD loss.
    """
    if SEED in ds["loss_ood"].dims:
        median, _, _ = seed_band(ds["loss_ood"].transpose(SEED, "step").values)
        return int(np.nanargmin(median)) if np.isfinite(median).any() else None
    t = ds.attrs.get("t_crit")
    if t is None or not math.isfinite(float(t)):
        loss = np.asarray(ds["loss_ood"].values, dtype=np.float64)
        if not np.isfinite(loss).any():
            return None
        return int(np.nanargmin(loss))
    return int(np.argmin(np.abs(steps.astype(np.float64) - float(t))))


def draw_ood_loss(
    ax: Axes,
    outputs: Mapping[float, xr.Dataset],
    baselines: xr.Dataset,
    colors: Mapping[float, Color],
    window: int,
) -> Handles:
    """OOD loss over training per M, ``t_crit`` starred, ridge's OOD loss dashed (seed bands with seeds)."""
    for M, ds in outputs.items():
        steps, loss = series(ds, "loss_ood", window)
        loss = draw_series(ax, steps, loss, colors[M], M, zorder=2)
        i = t_crit_index(ds, steps)
        if i is not None:
            ax.plot(steps[i], loss[i], color=colors[M], linestyle="none", zorder=4, **T_CRIT)
    ridge = float(baselines["loss_ridge_ood"].mean("token"))
    ax.axhline(ridge, color="black", linestyle="--", linewidth=0.9, zorder=3)
    set_log_y(ax)
    set_step_axis(ax)
    ax.set_ylabel("OOD loss")
    return {
        "ridge OOD loss": proxy({}, color="black", linestyle="--"),
        t_crit_label(outputs): proxy(T_CRIT),
        **band_handles(outputs),
    }


def draw_distances(
    ax_dmmse: Axes,
    ax_ridge: Axes,
    outputs: Mapping[float, xr.Dataset],
    colors: Mapping[float, Color],
    window: int,
) -> Handles:
    """ID distance to dMMSE_M (top) and to ridge (bottom); ``t_crit`` and end marked (seed bands with seeds)."""
    for ax, var in ((ax_dmmse, "dist_dmmse"), (ax_ridge, "dist_ridge")):
        for M, ds in outputs.items():
            steps, dist = series(ds, var, window)
            dist = draw_series(ax, steps, dist, colors[M], M, zorder=2)
            i = t_crit_index(ds, steps)
            if i is not None:
                ax.plot(steps[i], dist[i], color=colors[M], linestyle="none", zorder=4, **T_CRIT)
            ok = np.flatnonzero(np.isfinite(dist))
            if ok.size:
                ax.plot(steps[ok[-1]], dist[ok[-1]], color=colors[M], linestyle="none", zorder=5, **END)
        set_log_y(ax)
        set_step_axis(ax, label=ax is ax_ridge)
    ax_dmmse.set_ylabel("dist. to dMMSE$_M$")
    ax_ridge.set_ylabel("dist. to ridge")
    ax_dmmse.tick_params(labelbottom=False)
    return {
        t_crit_label(outputs): proxy(T_CRIT),
        END_LABEL: proxy(END),
        **band_handles(outputs),
    }


def figB_id_loss(
    outputs: Mapping[float, xr.Dataset],
    baselines: xr.Dataset,
    colors: Mapping[float, Color],
    window: int,
) -> Any:
    """Small multiples: one panel per M with its ID loss, dMMSE_M and ridge ID losses."""
    Ms = list(outputs)
    ncols = min(4, len(Ms))
    nrows = math.ceil(len(Ms) / ncols)
    width = DOUBLE_WIDTH if ncols > 2 else SINGLE_WIDTH * (1.0 if ncols == 1 else 1.4)
    fig = new_figure(width, 1.35 * nrows + 0.65)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    loss_ridge = baselines["loss_ridge_id"].mean("token")
    loss_dmmse = baselines["loss_dmmse_id"].mean("token")
    for ax, M in zip(axes.flat, Ms):
        ds = outputs[M]
        steps, loss = series(ds, "loss_id", window)
        loss = draw_series(ax, steps, loss, colors[M], 1.0, zorder=3)
        i = t_crit_index(ds, steps)
        if i is not None:
            ax.plot(steps[i], loss[i], color=colors[M], linestyle="none", zorder=4, **T_CRIT)
        if M in loss_dmmse["M"]:
            ax.axhline(float(loss_dmmse.sel(M=M)), color=colors[M], linestyle=":", linewidth=1.2, zorder=2)
        if M in loss_ridge["M"]:
            ax.axhline(float(loss_ridge.sel(M=M)), color="0.35", linestyle="--", linewidth=0.8, zorder=2)
        ax.set_title(f"$M$ = {format_M(M)}", pad=2)
        set_step_axis(ax, label=False)
        set_log_y(ax)
    for ax in axes.flat[len(Ms) :]:
        ax.set_axis_off()
    for idx, ax in enumerate(axes.flat[: len(Ms)]):
        ax.label_outer()
        if idx + ncols >= len(Ms):  # nothing drawn below: label the step axis here
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("training step")
    fig.supylabel("in-distribution loss")
    add_marker_legend(
        fig,
        {
            "transformer": proxy({}, linestyle="-"),
            "dMMSE$_M$": proxy({}, linestyle=":", linewidth=1.2),
            "ridge": proxy({}, color="0.35", linestyle="--", linewidth=0.8),
            "$t_{\\mathrm{crit}}$": proxy(T_CRIT),
            **band_handles(outputs),
        },
    )
    return fig
