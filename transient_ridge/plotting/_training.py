"""Quantities over training: OOD loss (Fig. 1a), distances (Fig. 1b), ID loss (App. B)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from numpy.typing import NDArray

from ._smooth import smooth
from ._style import (
    DOUBLE_WIDTH,
    END,
    END_LABEL,
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

__all__ = ["draw_distances", "draw_ood_loss", "figB_id_loss", "series", "t_crit_index"]

Handles = dict[str, Any]


def series(ds: xr.Dataset, var: str, window: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """``(steps, smoothed values)`` of a ``(step)`` variable of an outputs dataset."""
    da = ds[var]
    steps = np.asarray(da["step"].values)
    return steps, smooth(np.asarray(da.values, dtype=np.float64), window)


def t_crit_index(ds: xr.Dataset, steps: NDArray[np.int64]) -> int | None:
    """Index of the checkpoint nearest the run's ``t_crit`` attribute.

    Falls back to the raw OOD-loss minimum when the attribute is missing.
    """
    t = ds.attrs.get("t_crit")
    if t is None or not math.isfinite(float(t)):
        loss = np.asarray(ds["loss_ood"].values, dtype=np.float64)
        if not np.isfinite(loss).any():
            return None
        return int(np.nanargmin(loss))
    return int(np.argmin(np.abs(steps.astype(np.float64) - float(t))))


def _line(ax: Axes, x: Any, y: Any, color: Color, M: float, **kwargs: Any) -> None:
    # M = ∞ is drawn slightly thinner so that it does not hide the finite M beneath it.
    ax.plot(x, y, color=color, linewidth=0.8 if math.isinf(M) else 1.0, **kwargs)


def draw_ood_loss(
    ax: Axes,
    outputs: Mapping[float, xr.Dataset],
    baselines: xr.Dataset,
    colors: Mapping[float, Color],
    window: int,
) -> Handles:
    """OOD loss over training per M, ``t_crit`` starred, ridge's OOD loss dashed."""
    for M, ds in outputs.items():
        steps, loss = series(ds, "loss_ood", window)
        _line(ax, steps, loss, colors[M], M, zorder=2)
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
        "$t_{\\mathrm{crit}}$ (min. OOD loss)": proxy(T_CRIT),
    }


def draw_distances(
    ax_dmmse: Axes,
    ax_ridge: Axes,
    outputs: Mapping[float, xr.Dataset],
    colors: Mapping[float, Color],
    window: int,
) -> Handles:
    """ID distance to dMMSE_M (top) and to ridge (bottom); ``t_crit`` and end marked."""
    for ax, var in ((ax_dmmse, "dist_dmmse"), (ax_ridge, "dist_ridge")):
        for M, ds in outputs.items():
            steps, dist = series(ds, var, window)
            _line(ax, steps, dist, colors[M], M, zorder=2)
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
        "$t_{\\mathrm{crit}}$ (min. OOD loss)": proxy(T_CRIT),
        END_LABEL: proxy(END),
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
        ax.plot(steps, loss, color=colors[M], zorder=3)
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
        },
    )
    return fig
