"""Plotting: every figure of the paper as a pure function of the zarr stores.

The public names are re-exported by ``transient_ridge.figures``; the private
modules each hold one part:

- ``smooth`` (re-exported from :mod:`transient_ridge.smoothing`): the centred moving average;
- ``_style``: sizes, fonts, the M colour map and legend, the step axis;
- ``_inputs``: ``FigureInputs`` (the opened stores) and ``FigureSettings``;
- ``_training``, ``_pca``, ``_sweep``, ``_llc``, ``_families``: the panels, by subject;
- ``_registry``: figure names, the stores each needs, dispatch and saving.
"""

from ._inputs import FigureInputs, FigureSettings, MissingStoreError
from ._registry import (
    FIGURE_GROUPS, FIGURE_NAMES, FIGURE_OPTIONAL_STORES, FIGURE_STORES, draw_figure, figure_reads, save_figure
)
from ..smoothing import smooth
from ._style import format_M, m_colors

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
