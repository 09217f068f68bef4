"""Joint trajectory PCA: PC1–PC2 (Fig. 1c), all PC pairs (App. C), token loadings (App. E)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..seeds import SEED
from ._inputs import parse_predictor_M
from ..smoothing import smooth
from ._style import (
    DMMSE,
    DOUBLE_WIDTH,
    END,
    END_LABEL,
    RIDGE,
    RIDGE_LAMBDA_COLOR,
    SINGLE_WIDTH,
    START,
    START_LABEL,
    Color,
    add_m_legend,
    add_marker_legend,
    new_figure,
    proxy,
)

__all__ = ["draw_pca_pair", "figC_pca_pairs", "figE_token_loadings", "pc_label", "pcs"]

Handles = dict[str, Any]


def pcs(pca: xr.Dataset, limit: int | None = None) -> list[Any]:
    """The ``pc`` labels in order, at most ``limit`` of them."""
    labels = list(pca["pc"].values)
    return labels if limit is None else labels[:limit]


def pc_label(pca: xr.Dataset, pc: Any) -> str:
    """``"PC1 (18.3% var.)"``, from ``explained_variance_ratio``."""
    ratio = float(pca["explained_variance_ratio"].sel(pc=pc))
    return f"PC{pc} ({100 * ratio:.1f}% var.)"


def draw_pca_pair(
    ax: Axes,
    pca: xr.Dataset,
    colors: Mapping[float, Color],
    pc_x: Any,
    pc_y: Any,
    window: int,
    *,
    labels: bool = True,
) -> Handles:
    """Every run's trajectory in the plane (pc_x, pc_y), start/end marked, predictors projected.

    With a ``seed`` dim (runs of several train seeds, fitted jointly) every seed's
    trajectory is drawn, in its M's colour.
    """
    trajectory = pca["trajectory"].sel(pc=[pc_x, pc_y])
    seeds = pca.sizes.get(SEED, 0) if SEED in trajectory.dims else 0
    if seeds:
        traj = trajectory.transpose("M", SEED, "step", "pc")
        paths = [(float(M), xy) for M, per_seed in zip(traj["M"].values, traj.values) for xy in per_seed]
    else:
        traj = trajectory.transpose("M", "step", "pc")
        paths = [(float(M), xy) for M, xy in zip(traj["M"].values, traj.values)]
    for M, xy in paths:
        xy = np.asarray(xy, dtype=np.float64)[np.isfinite(xy).all(axis=1)]
        if not len(xy):
            continue
        xy = smooth(xy, window, axis=0)
        color = colors[M]
        width = (0.7 if math.isinf(M) else 0.9) * (0.8 if seeds else 1.0)
        ax.plot(xy[:, 0], xy[:, 1], color=color, linewidth=width, zorder=2)
        ax.plot(*xy[0], color=color, linestyle="none", zorder=4, **START)
        ax.plot(*xy[-1], color=color, linestyle="none", zorder=5, **END)
    path_label = _draw_ridge_path(ax, pca, pc_x, pc_y)
    proj = pca["predictor_projection"].sel(pc=[pc_x, pc_y]).transpose("predictor", "pc")
    for label, (x, y) in zip(proj["predictor"].values, proj.values):
        label = str(label)
        M = parse_predictor_M(label)
        if label == "ridge":
            ax.plot(x, y, color="black", linestyle="none", zorder=7, **RIDGE)
        elif M is not None:
            ax.plot(x, y, color=colors.get(M, "0.5"), linestyle="none", zorder=6, **DMMSE)
    if labels:
        ax.set_xlabel(pc_label(pca, pc_x))
        ax.set_ylabel(pc_label(pca, pc_y))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    handles = {
        START_LABEL: proxy(START, markeredgecolor="0.4"),
        END_LABEL: proxy(END),
        "dMMSE$_M$": proxy(DMMSE),
        "ridge": proxy(RIDGE, color="black"),
    }
    if path_label is not None:
        handles[path_label] = proxy(RIDGE_PATH_END, color=RIDGE_LAMBDA_COLOR, linestyle="--", linewidth=0.9)
    if seeds:
        handles[f"one trajectory per seed ({seeds} seeds)"] = proxy({}, linestyle="-", linewidth=0.8)
    return handles


RIDGE_PATH_END = {"marker": ">", "markersize": 3.5, "markerfacecolor": "white", "markeredgewidth": 0.7}


def _draw_ridge_path(ax: Axes, pca: xr.Dataset, pc_x: Any, pc_y: Any) -> str | None:
    """ridge_λ from λ = σ² (ridge) to the largest λ of the grid, projected; its legend text (None: not in the store).

    Drawn through every grid point (no smoothing), an open triangle at the largest λ.
    """
    if "ridge_path_projection" not in pca:
        return None
    path = pca["ridge_path_projection"].sel(pc=[pc_x, pc_y]).transpose("ridge_penalty", "pc").sortby("ridge_penalty")
    sigma2 = float(pca.attrs.get("noise_variance", path["ridge_penalty"].min()))
    path = path.where(path["ridge_penalty"] >= sigma2 * (1 - 1e-12), drop=True)
    if path.sizes["ridge_penalty"] < 2:
        return None
    xy = path.values
    ax.plot(xy[:, 0], xy[:, 1], color=RIDGE_LAMBDA_COLOR, linestyle="--", linewidth=0.9, zorder=6)
    ax.plot(*xy[-1], color=RIDGE_LAMBDA_COLOR, linestyle="none", zorder=6, **RIDGE_PATH_END)
    return f"ridge$_\\lambda$, $\\sigma^2$ ≤ $\\lambda$ ≤ {float(path['ridge_penalty'].max()):g}"


def figC_pca_pairs(pca: xr.Dataset, colors: Mapping[float, Color], window: int, max_pcs: int) -> Figure:
    """Corner plot of every pair of the first ``max_pcs`` PCs (lower triangle)."""
    shown = pcs(pca, max_pcs)
    if len(shown) < 2:
        raise ValueError(
            f"figure 'figC_pca_pairs' needs at least 2 PCs, but pca.zarr has {len(shown)}; "
            f"fit the PCA with n_components ≥ 2"
        )
    n = len(shown) - 1  # grid size
    size = {1: (SINGLE_WIDTH, 3.2), 2: (5.0, 4.6)}.get(n, (DOUBLE_WIDTH, 6.6))
    fig = new_figure(*size)
    grid = fig.add_gridspec(n, n)
    axes: list[Axes] = []
    handles: Handles = {}
    column_first: dict[int, Axes] = {}
    row_first: dict[int, Axes] = {}
    for row in range(n):
        for col in range(row + 1):
            ax = fig.add_subplot(grid[row, col], sharex=column_first.get(col), sharey=row_first.get(row))
            column_first.setdefault(col, ax)
            row_first.setdefault(row, ax)
            handles = draw_pca_pair(ax, pca, colors, shown[col], shown[row + 1], window, labels=False)
            if row == n - 1:
                ax.set_xlabel(pc_label(pca, shown[col]))
            else:
                ax.tick_params(labelbottom=False)
            if col == 0:
                ax.set_ylabel(pc_label(pca, shown[row + 1]))
            else:
                ax.tick_params(labelleft=False)
            axes.append(ax)
    add_m_legend(fig, axes, colors)
    add_marker_legend(fig, handles)
    return fig


def _token_ticks(tokens: np.ndarray) -> list[int]:
    """1 and every quarter of K (1, 4, 8, 12, 16 for K = 16; every token for K ≤ 8)."""
    first, last = int(tokens.min()), int(tokens.max())
    if last - first < 8:
        return list(range(first, last + 1))
    step = max(1, round(last / 4))
    return sorted({first, *range(step, last + 1, step)} | {last})


def figE_token_loadings(pca: xr.Dataset, max_pcs: int) -> Figure:
    """One bar chart per PC: the share of its squared loading on each token position."""
    shown = pcs(pca, max_pcs)
    loadings = pca["token_loadings"].transpose("pc", "token")
    tokens = np.asarray(loadings["token"].values)
    ncols = min(4, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    width = DOUBLE_WIDTH if ncols > 2 else SINGLE_WIDTH * (1.0 if ncols == 1 else 1.4)
    fig = new_figure(width, 1.45 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    uniform = 1.0 / len(tokens)
    for ax, pc in zip(axes.flat, shown):
        ax.bar(tokens, loadings.sel(pc=pc).values, width=0.8, color="#4c72b0", zorder=2)
        ax.axhline(uniform, color="0.3", linestyle="--", linewidth=0.7, zorder=3)
        ax.set_title(pc_label(pca, pc), pad=2)
        ax.set_xticks(_token_ticks(tokens))
        ax.set_xlim(tokens.min() - 0.6, tokens.max() + 0.6)
    for ax in axes.flat[len(shown) :]:
        ax.set_axis_off()
    for idx, ax in enumerate(axes.flat[: len(shown)]):
        ax.label_outer()
        if idx + ncols >= len(shown):  # nothing drawn below: label the token axis here
            ax.tick_params(labelbottom=True)
            ax.set_xlabel("token $k$")
    fig.supylabel("share of squared loading")
    add_marker_legend(fig, {"uniform share 1/$K$": proxy({}, color="0.3", linestyle="--", linewidth=0.7)})
    return fig
