"""The shared look: sizes, fonts, the M colour map and its legend, the step axis, markers.

Every figure is a ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot,
no global figure registry), laid out by the constrained layout engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation, SymmetricalLogLocator

__all__ = [
    "DOUBLE_WIDTH",
    "INF_COLOR",
    "SINGLE_WIDTH",
    "Color",
    "add_m_legend",
    "add_marker_legend",
    "format_M",
    "m_colors",
    "new_figure",
    "panel_letter",
    "set_log_y",
    "set_step_axis",
    "style",
]

Color = tuple[float, float, float, float]

SINGLE_WIDTH = 3.5  # inches: one column of a two-column paper
DOUBLE_WIDTH = 7.0  # inches: full page width
FONT_SIZE = 8.0
SMALL_FONT_SIZE = 7.0  # ticks and legends; nothing is smaller

INF_COLOR: Color = (0.0, 0.0, 0.0, 1.0)  # M = ∞ is black in every figure
_CMAP = "plasma"
_CMAP_RANGE = (0.0, 0.85)  # dark blue (small M) to orange (large M); skips pale yellow

RC_PARAMS: dict[str, Any] = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "figure.titlesize": FONT_SIZE,
    "figure.labelsize": FONT_SIZE,
    "xtick.labelsize": SMALL_FONT_SIZE,
    "ytick.labelsize": SMALL_FONT_SIZE,
    "legend.fontsize": SMALL_FONT_SIZE,
    "legend.title_fontsize": SMALL_FONT_SIZE,
    "legend.frameon": False,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "lines.linewidth": 1.0,
    "lines.markersize": 4.0,
    "errorbar.capsize": 1.5,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "figure.constrained_layout.hspace": 0.03,
    "figure.constrained_layout.wspace": 0.03,
    "pdf.fonttype": 42,  # embed TrueType so text stays text in the PDF
    "svg.fonttype": "none",
    "mathtext.default": "regular",
}


@contextmanager
def style() -> Iterator[None]:
    """Temporarily apply the project's rcParams (fonts, line widths, PDF fonts)."""
    with mpl.rc_context(RC_PARAMS):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on an Agg canvas, not registered with pyplot."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def finalize(fig: Figure) -> None:
    """Pin tick label sizes on every axes so they survive saving outside ``style()``."""
    for ax in fig.get_axes():
        ax.tick_params(which="both", labelsize=SMALL_FONT_SIZE)


def format_number(x: float) -> str:
    """Short label for a setting: ``1000``, ``316.2``, ``0.03162``, ``1e-5``, ``3.16e-5``."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if 1e-2 <= abs(x) < 1e5:
        return f"{x:.4g}"
    mantissa, exponent = f"{x:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def format_M(M: float) -> str:
    """``inf`` → ``"∞"``, integral values without decimals, others in ``%g``."""
    M = float(M)
    if math.isinf(M):
        return "∞"
    return str(int(M)) if M.is_integer() else f"{M:g}"


def m_colors(M_values: Iterable[float]) -> dict[float, Color]:
    """One colour per number of tasks M, the same map in every figure.

    Finite M are placed on ``plasma`` by ``log M`` between the smallest and the
    largest finite M given (a single finite M takes the middle colour);
    ``M = ∞`` is black. Keys are the distinct values as floats.

    Pass the whole sweep grid (not just the M drawn in one figure) so that a
    figure showing a subset uses the same colours as the others.
    """
    values = sorted({float(m) for m in M_values})
    bad = [m for m in values if math.isnan(m) or m <= 0]
    if bad:
        raise ValueError(f"M values {bad} are not allowed: M must be a positive number or inf")
    finite = [m for m in values if math.isfinite(m)]
    cmap = mpl.colormaps[_CMAP]
    lo, hi = _CMAP_RANGE
    colors: dict[float, Color] = {}
    if finite:
        log_min, log_max = math.log(finite[0]), math.log(finite[-1])
        for m in finite:
            frac = 0.5 if log_max == log_min else (math.log(m) - log_min) / (log_max - log_min)
            colors[m] = tuple(float(c) for c in cmap(lo + frac * (hi - lo)))  # type: ignore[assignment]
    if any(math.isinf(m) for m in values):
        colors[math.inf] = INF_COLOR
    return colors


def add_m_legend(
    fig: Figure | SubFigure,
    axes: Axes | Sequence[Axes],
    colors: Mapping[float, Color],
    *,
    location: str = "right",
    max_labels: int = 12,
) -> Colorbar | None:
    """The M legend used everywhere: a discrete colour bar, one cell per M, ∞ last.

    Cells are equally wide whatever the spacing of M; when there are more than
    ``max_labels`` values only every few are labelled (the first, the last
    finite and ∞ always are). A white rule separates ∞ from the finite M.
    """
    Ms = sorted(colors)
    if not Ms:
        return None
    n = len(Ms)
    cmap = ListedColormap([colors[m] for m in Ms])
    mappable = ScalarMappable(norm=BoundaryNorm(np.arange(n + 1), n), cmap=cmap)
    orientation = "vertical" if location in ("right", "left") else "horizontal"
    cbar = fig.colorbar(
        mappable,
        ax=axes,
        location=location,
        orientation=orientation,
        ticks=np.arange(n) + 0.5,
        aspect=35,
        fraction=0.04,
        pad=0.01,
        drawedges=False,
    )
    labels = [format_M(m) if i in _labelled(Ms, max_labels) else "" for i, m in enumerate(Ms)]
    cbar.set_ticks(np.arange(n) + 0.5, labels=labels)
    cbar.ax.tick_params(length=0, labelsize=SMALL_FONT_SIZE, pad=2)
    cbar.outline.set_linewidth(0.4)
    cbar.set_label("number of tasks $M$", fontsize=FONT_SIZE)
    n_finite = sum(math.isfinite(m) for m in Ms)
    if 0 < n_finite < n:  # a white rule between the finite M and ∞
        rule = cbar.ax.axhline if orientation == "vertical" else cbar.ax.axvline
        rule(n_finite, color="white", linewidth=1.5)
    return cbar


def _labelled(Ms: Sequence[float], max_labels: int) -> set[int]:
    """Indices of the colour-bar cells to label (``Ms`` sorted, ∞ last): every
    ``stride``-th cell counted down from the last (∞ or the largest M), and the
    smallest M when it is not crowded (two cells or more from the nearest label)."""
    n = len(Ms)
    if n == 0:
        return set()
    stride = max(1, math.ceil(n / max(1, max_labels)))
    keep = set(range(n - 1, -1, -stride))
    if min(keep) >= 2:
        keep.add(0)
    return keep


def add_marker_legend(
    fig: Figure | SubFigure, handles: Mapping[str, Any], *, ncols: int | None = None
) -> None:
    """A figure legend below the axes for the markers and reference lines (not M)."""
    if not handles:
        return
    fig.legend(
        list(handles.values()),
        list(handles.keys()),
        loc="outside lower center",
        ncols=ncols or min(len(handles), 6),
        handlelength=1.8,
        columnspacing=1.2,
        handletextpad=0.5,
        borderaxespad=0.2,
    )


class _StepFormatter(LogFormatterSciNotation):
    """Symlog step labels: ``0``, then ``10^1``, ``10^2``, …; ``10^0`` is left
    unlabelled because on this axis it sits right next to ``0``."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        if x == 0:
            return "0"
        if x == 1:
            return ""
        return super().__call__(x, pos)


class _PlainLogFormatter(LogFormatterSciNotation):
    """Log-axis labels as plain numbers (``0.3``, ``1``, ``20``) where they are short;
    which ticks get a label is still matplotlib's choice."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        label = super().__call__(x, pos)
        if not label or not 1e-3 <= abs(x) < 1e4:
            return label
        return f"{x:g}"


def set_step_axis(ax: Axes, *, label: bool = True) -> None:
    """Log-like training-step axis that still shows step 0 (symlog, linear below 1)."""
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
    ax.xaxis.set_major_formatter(_StepFormatter(base=10))
    ax.xaxis.set_minor_locator(SymmetricalLogLocator(linthresh=1.0, base=10, subs=np.arange(2, 10)))
    ax.set_xlim(left=0)
    if label:
        ax.set_xlabel("training step")


def set_log_y(ax: Axes) -> None:
    """Log y axis labelled with plain numbers."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PlainLogFormatter(base=10))
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(base=10, labelOnlyBase=False))


def panel_letter(ax: Axes, letter: str) -> None:
    """Bold panel letter at the top left, as in the paper's multi-panel figures."""
    ax.set_title(letter, loc="left", fontweight="bold", fontsize=FONT_SIZE)


# Marker vocabulary shared by all figures (proxy artists for the legends).
T_CRIT = {"marker": "*", "markersize": 7.0, "markeredgecolor": "black", "markeredgewidth": 0.4}
END = {"marker": "o", "markersize": 3.5, "markeredgecolor": "black", "markeredgewidth": 0.3}
START = {"marker": "o", "markersize": 3.5, "markerfacecolor": "white", "markeredgewidth": 0.8}
END_LABEL = "end of training"
START_LABEL = "start of training"
DMMSE = {"marker": "D", "markersize": 4.0, "markeredgecolor": "black", "markeredgewidth": 0.4}
RIDGE = {"marker": "s", "markersize": 5.0, "markeredgecolor": "white", "markeredgewidth": 0.6}
PROXY_GREY = "0.55"
# the predictor families (hues outside the M colour map, plasma)
RIDGE_LAMBDA_COLOR = "#2ca02c"  # ridge_λ: green
GD_COLOR = "#17a0b0"  # GD-k: teal


def proxy(label_style: Mapping[str, Any], *, color: Any = PROXY_GREY, **line: Any) -> Line2D:
    """A legend handle: no data, just the style."""
    kwargs: dict[str, Any] = {"linestyle": "none", "color": color}
    kwargs.update(label_style)
    kwargs.update(line)
    return Line2D([], [], **kwargs)
