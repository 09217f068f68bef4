"""Figures of Carroll et al. (2025) and the LLC over training of Hoogland et al. (2024).

Pure plotting: opened zarr stores (layout in docs/stores.md) in, a matplotlib
``Figure`` out; nothing here reads files, imports snakemake or touches pyplot.

    inputs = FigureInputs(outputs={1.0: ds_M1, math.inf: ds_Minf}, baselines=bl)
    fig = draw_figure("fig1_ood_loss", inputs, {"smoothing_window": 5})
    save_figure(fig, "fig1_ood_loss.pdf", "fig1_ood_loss.png")

``FIGURE_NAMES`` lists every figure, ``FIGURE_STORES[name]`` the stores it
needs (``"outputs"`` = every run's outputs.zarr),
``FIGURE_OPTIONAL_STORES[name]`` those it uses when given (``figure_reads(name)``: both), and
``FIGURE_GROUPS`` the groups the workflow draws in one job each.
"""

from transient_ridge.plotting import (
    FIGURE_GROUPS,
    FIGURE_NAMES,
    FIGURE_OPTIONAL_STORES,
    FIGURE_STORES,
    FigureInputs,
    FigureSettings,
    MissingStoreError,
    draw_figure,
    figure_reads,
    format_M,
    m_colors,
    save_figure,
    smooth,
)

__all__ = [
    "FIGURE_GROUPS",
    "FIGURE_NAMES",
    "FIGURE_OPTIONAL_STORES",
    "FIGURE_STORES",
    "FigureInputs",
    "FigureSettings",
    "MissingStoreError",
    "draw_figure",
    "figure_reads",
    "format_M",
    "m_colors",
    "save_figure",
    "smooth",
]
