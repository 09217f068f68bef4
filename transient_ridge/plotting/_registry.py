"""Figure names, the stores each needs, the single dispatch and saving."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..provenance import PDF_KEY, PNG_KEY, current_stamp
from ..seeds import seeds_of, select_seed
from ._inputs import FigureInputs, FigureSettings, require_vars
from ._families import fig_predictor_fit
from ._llc import fig_llc_calibration, fig_llc_over_time, figF_llc_traces
from ._pca import draw_pca_pair, figC_pca_pairs, figE_token_loadings, pcs
from ._style import (
    DOUBLE_WIDTH,
    SINGLE_WIDTH,
    Color,
    add_m_legend,
    add_marker_legend,
    finalize,
    m_colors,
    new_figure,
    panel_letter,
    style,
)
from ._sweep import MAxis, draw_llc_vs_M, draw_loss_vs_M
from ._training import draw_distances, draw_ood_loss, figB_id_loss

__all__ = [
    "FIGURE_GROUPS", "FIGURE_NAMES", "FIGURE_OPTIONAL_STORES", "FIGURE_STORES", "draw_figure", "figure_reads", "save_figure"
]

# Which stores each figure reads. "outputs" means every run's outputs.zarr.
FIGURE_STORES: dict[str, tuple[str, ...]] = {
    "fig1_ood_loss": ("outputs", "baselines"),
    "fig1_distances": ("outputs",),
    "fig1_pca": ("pca",),
    "fig3_loss_vs_M": ("outputs", "baselines"),
    "fig3_llc_vs_M": ("llc",),
    "figB_id_loss": ("outputs", "baselines"),
    "figC_pca_pairs": ("pca",),
    "figE_token_loadings": ("pca",),
    "figF_llc_traces": ("llc",),
    "fig_llc_over_time": ("llc", "outputs"),
    "fig_llc_calibration": ("llc_calibration",),
    "fig_predictor_fit": ("outputs",),
    "fig1": ("outputs", "baselines", "pca"),
    "fig3": ("outputs", "baselines", "llc"),
}
# Stores a figure uses when they are given, and draws without otherwise.
FIGURE_OPTIONAL_STORES: dict[str, tuple[str, ...]] = {
    "figF_llc_traces": ("llc_calibration",),
}
FIGURE_NAMES: tuple[str, ...] = tuple(FIGURE_STORES)


def figure_reads(name: str) -> tuple[str, ...]:
    """Every store figure ``name`` reads: the ones it needs, then those it uses when given."""
    return FIGURE_STORES[name] + FIGURE_OPTIONAL_STORES.get(name, ())


def _figure_group(name: str) -> str:
    stores = FIGURE_STORES[name]
    if "llc_calibration" in stores:
        return "figures_llc_calibration"  # only where an experiment has a calibration
    if "llc" in stores:
        return "figures_llc"
    return "figures_pca" if "pca" in stores else "figures_runs"


# The workflow draws figures in groups, one job (one Python start-up, each store opened once)
# per group: the figures of the runs' stores alone, those that need the PCA, the LLC's and the
# calibration's. A group needs the same upstream jobs as its members, so grouping delays no
# figure, and groups that do not depend on each other run side by side.
FIGURE_GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(name for name in FIGURE_NAMES if _figure_group(name) == group)
    for group in ("figures_runs", "figures_pca", "figures_llc", "figures_llc_calibration")
}

# Variables each store must hold for the figures (checked up front for a clear error).
_VARIABLES: dict[str, tuple[str, ...]] = {
    "outputs": ("loss_ood", "loss_id", "dist_ridge", "dist_dmmse"),
    "baselines": ("loss_ridge_ood", "loss_ridge_id", "loss_dmmse_id"),
    "pca": ("trajectory", "explained_variance_ratio", "predictor_projection", "token_loadings"),
    "llc": ("llc_mean", "llc_std", "loss_trace"),
    "llc_calibration": ("llc_mean", "llc_std", "loss_trace"),
    "llc_calibration_choice": ("llc_mean", "trace_peak", "healthy", "accepted", "chosen_epsilon"),
}

Colors = Mapping[float, Color]


def _fig1_ood_loss(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    fig = new_figure(SINGLE_WIDTH, 2.9)
    ax = fig.add_subplot()
    assert inputs.baselines is not None
    handles = draw_ood_loss(ax, inputs.outputs, inputs.baselines, colors, settings.window)
    add_m_legend(fig, ax, colors)
    add_marker_legend(fig, handles)
    return fig


def _fig1_distances(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    fig = new_figure(SINGLE_WIDTH, 3.6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    handles = draw_distances(top, bottom, inputs.outputs, colors, settings.window)
    add_m_legend(fig, [top, bottom], colors)
    add_marker_legend(fig, handles)
    return fig


def _fig1_pca(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.pca is not None
    pc1, pc2 = _first_two_pcs("fig1_pca", inputs)
    fig = new_figure(SINGLE_WIDTH, 3.3)
    ax = fig.add_subplot()
    handles = draw_pca_pair(ax, inputs.pca, colors, pc1, pc2, settings.window)
    add_m_legend(fig, ax, colors)
    add_marker_legend(fig, handles, ncols=4 if len(handles) <= 4 else 3)
    return fig


def _first_two_pcs(figure: str, inputs: FigureInputs) -> tuple[Any, Any]:
    assert inputs.pca is not None
    labels = pcs(inputs.pca)
    if len(labels) < 2:
        raise ValueError(
            f"figure {figure!r} needs at least 2 PCs, but pca.zarr has {len(labels)}; "
            f"fit the PCA with n_components ≥ 2"
        )
    return labels[0], labels[1]


def _maxis(colors: Colors) -> MAxis:
    return MAxis.from_values(colors)  # every M of the sweep, so fig3's panels line up


def _fig3_loss_vs_M(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.baselines is not None
    fig = new_figure(SINGLE_WIDTH, 2.9)
    ax = fig.add_subplot()
    handles = draw_loss_vs_M(ax, _maxis(colors), inputs.outputs, inputs.baselines, colors)
    add_m_legend(fig, ax, colors)
    add_marker_legend(fig, handles, ncols=3)
    return fig


def _fig3_llc_vs_M(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.llc is not None
    fig = new_figure(SINGLE_WIDTH, 2.9)
    ax = fig.add_subplot()
    handles = draw_llc_vs_M(ax, _maxis(colors), inputs.llc, colors, settings.llc_error)
    add_m_legend(fig, ax, colors)
    add_marker_legend(fig, handles)
    return fig


def _fig1(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    """Fig. 1: OOD loss | distances to dMMSE_M and ridge | PC1–PC2."""
    assert inputs.baselines is not None and inputs.pca is not None
    pc1, pc2 = _first_two_pcs("fig1", inputs)
    fig = new_figure(DOUBLE_WIDTH, 2.9)
    grid = fig.add_gridspec(2, 3, width_ratios=[1.0, 1.0, 1.1])
    ax_ood = fig.add_subplot(grid[:, 0])
    ax_dmmse = fig.add_subplot(grid[0, 1])
    ax_ridge = fig.add_subplot(grid[1, 1], sharex=ax_dmmse)
    ax_pca = fig.add_subplot(grid[:, 2])
    handles = draw_ood_loss(ax_ood, inputs.outputs, inputs.baselines, colors, settings.window)
    handles |= draw_distances(ax_dmmse, ax_ridge, inputs.outputs, colors, settings.window)
    handles |= draw_pca_pair(ax_pca, inputs.pca, colors, pc1, pc2, settings.window)
    for ax, letter in ((ax_ood, "a"), (ax_dmmse, "b"), (ax_pca, "c")):
        panel_letter(ax, letter)
    add_m_legend(fig, [ax_ood, ax_dmmse, ax_ridge, ax_pca], colors)
    add_marker_legend(fig, handles, ncols=len(handles) if len(handles) <= 6 else math.ceil(len(handles) / 3))
    return fig


def _fig3(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    """Fig. 3: final ID loss against M | final LLC against M, on the same M axis."""
    assert inputs.baselines is not None and inputs.llc is not None
    fig = new_figure(DOUBLE_WIDTH, 2.7)
    ax_loss, ax_llc = fig.subplots(1, 2)
    maxis = _maxis(colors)
    handles = draw_loss_vs_M(ax_loss, maxis, inputs.outputs, inputs.baselines, colors)
    handles |= draw_llc_vs_M(ax_llc, maxis, inputs.llc, colors, settings.llc_error)
    panel_letter(ax_loss, "a")
    panel_letter(ax_llc, "b")
    add_m_legend(fig, [ax_loss, ax_llc], colors)
    add_marker_legend(fig, handles)
    return fig


def _figB(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.baselines is not None
    return figB_id_loss(inputs.outputs, inputs.baselines, colors, settings.window)


def _figC(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.pca is not None
    return figC_pca_pairs(inputs.pca, colors, settings.window, settings.max_pcs)


def _figE(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.pca is not None
    return figE_token_loadings(inputs.pca, settings.max_pcs)


def _figF(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.llc is not None
    seeds = seeds_of(inputs.llc)
    if seeds is None:
        return figF_llc_traces(inputs.llc, inputs.llc_calibration, colors)
    # traces are per estimate: those of the smallest train seed
    fig = figF_llc_traces(select_seed(inputs.llc, seeds[0]), inputs.llc_calibration, colors)
    fig.suptitle(f"train seed {seeds[0]} of {len(seeds)}", x=0.99, ha="right", fontsize="small")
    return fig


def _llc_calibration(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.llc_calibration is not None
    require_vars(inputs.llc_calibration, "fig_llc_calibration", "llc_calibration", _VARIABLES["llc_calibration_choice"])
    return fig_llc_calibration(inputs.llc_calibration, colors)


def _predictor_fit(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    return fig_predictor_fit(inputs.outputs, colors, settings.window)


def _llc_over_time(inputs: FigureInputs, settings: FigureSettings, colors: Colors) -> Figure:
    assert inputs.llc is not None
    return fig_llc_over_time(inputs.llc, inputs.outputs, colors, settings.window, settings.llc_error)


_DRAW: dict[str, Callable[[FigureInputs, FigureSettings, Colors], Figure]] = {
    "fig1_ood_loss": _fig1_ood_loss,
    "fig1_distances": _fig1_distances,
    "fig1_pca": _fig1_pca,
    "fig3_loss_vs_M": _fig3_loss_vs_M,
    "fig3_llc_vs_M": _fig3_llc_vs_M,
    "figB_id_loss": _figB,
    "figC_pca_pairs": _figC,
    "figE_token_loadings": _figE,
    "figF_llc_traces": _figF,
    "fig_llc_over_time": _llc_over_time,
    "fig_llc_calibration": _llc_calibration,
    "fig_predictor_fit": _predictor_fit,
    "fig1": _fig1,
    "fig3": _fig3,
}
assert set(_DRAW) == set(FIGURE_STORES)


def draw_figure(
    name: str,
    inputs: FigureInputs,
    settings: FigureSettings | Mapping[str, Any] | None = None,
) -> Figure:
    """Draw the figure ``name`` (one of ``FIGURE_NAMES``) from the opened stores.

    Args:
        name: figure name, e.g. ``"fig1_pca"``.
        inputs: the stores; those in ``FIGURE_STORES[name]`` must be present.
        settings: ``FigureSettings`` or a mapping of its fields
            (``smoothing_window``, ``raw``, ``M_values``, ``max_pcs``, ``llc_error``).

    Returns:
        A new ``Figure`` (Agg canvas, not registered with pyplot).

    Raises:
        ValueError: unknown name or bad settings.
        MissingStoreError: a store the figure needs is missing (names both).
        KeyError: a store lacks a variable the figure reads (names it).
    """
    if name not in _DRAW:
        raise ValueError(f"unknown figure {name!r}; known figures: {', '.join(FIGURE_NAMES)}")
    settings = FigureSettings.coerce(settings)
    for store in FIGURE_STORES[name]:
        inputs.require(name, store)
    for store in figure_reads(name):
        if store == "outputs":
            for ds in inputs.outputs.values():
                require_vars(ds, name, store, _VARIABLES[store])
        elif (ds := getattr(inputs, store)) is not None:
            require_vars(ds, name, store, _VARIABLES[store])
    Ms = inputs.M_values() | set(settings.M_values or ())
    colors = m_colors(Ms)
    with style():
        fig = _DRAW[name](inputs, settings, colors)
        finalize(fig)
    return fig


def save_figure(
    fig: Figure,
    pdf_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    dpi: int = 200,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write ``fig`` as a PDF (vector) and a PNG at ``dpi``, each via a temporary file.

    A file appears under its final name only once fully written, so a failed
    job never leaves a truncated figure that looks complete. Both files carry
    ``provenance`` (default: this process's stamp, see
    :mod:`transient_ridge.provenance`) as JSON: the PNG in a text chunk, the PDF
    under the standard ``Subject`` key (matplotlib rejects non-standard keys).
    The PDF has no creation date; its only time is the stamp's ``created_utc``.
    """
    if dpi < 1:
        raise ValueError(f"dpi={dpi} must be ≥ 1 (200 suits print, 100 a quick look)")
    stamp = json.dumps(dict(provenance) if provenance is not None else current_stamp(), sort_keys=True)
    for path, fmt, metadata in (
        (Path(pdf_path), "pdf", {"CreationDate": None, PDF_KEY: stamp}),
        (Path(png_path), "png", {PNG_KEY: stamp}),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        try:
            with style():
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
