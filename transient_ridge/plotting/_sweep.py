"""Quantities against the number of tasks M (Fig. 3): final loss and final LLC."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.ticker import NullLocator

from ..llc import SOUND, final_estimate, read_estimates
from ..seeds import SEED, seed_band, select_seed
from ._llc import STATUS_MARKERS, status_legend
from ._style import DMMSE, END, RIDGE, Color, proxy, set_log_y

__all__ = ["MAxis", "draw_llc_vs_M", "draw_loss_vs_M", "final_llc", "final_llc_over_seeds"]

Handles = dict[str, Any]


@dataclass(frozen=True)
class MAxis:
    """A log2 axis for finite M with ∞ placed a gap to the right, under its own tick.

    ``grid`` holds the finite M of the sweep, sorted: a grid of at most
    ``MAX_GRID_TICKS`` values is labelled value by value (M = 6 and 12 get their own
    tick); a longer one gets power-of-two ticks.
    """

    grid: tuple[float, ...]

    MAX_GRID_TICKS = 8

    @classmethod
    def from_values(cls, Ms: Iterable[float]) -> MAxis:
        return cls(tuple(sorted({float(m) for m in Ms if math.isfinite(float(m))})))

    @property
    def finite_min(self) -> float:
        return self.grid[0] if self.grid else 1.0

    @property
    def finite_max(self) -> float:
        return self.grid[-1] if self.grid else 1.0

    @property
    def octaves(self) -> float:
        return math.log2(self.finite_max / self.finite_min)

    @property
    def inf_position(self) -> float:
        """Where ∞ sits: at least one octave, about a sixth of the span, past the largest M."""
        return self.finite_max * 2.0 ** max(1.0, self.octaves / 6.0)

    def position(self, M: float) -> float:
        return self.inf_position if math.isinf(M) else float(M)

    def positions(self, Ms: Iterable[float]) -> np.ndarray:
        return np.array([self.position(float(m)) for m in Ms], dtype=np.float64)

    def finite_ticks(self) -> tuple[list[float], list[str]]:
        """Tick positions and labels for the finite M: the grid itself, or powers of two."""
        if 0 < len(self.grid) <= self.MAX_GRID_TICKS:
            return list(self.grid), [f"{m:g}" for m in self.grid]
        lo = math.ceil(math.log2(self.finite_min) - 1e-9)
        hi = math.floor(math.log2(self.finite_max) + 1e-9)
        exps = list(range(lo, hi + 1))
        stride = max(1, math.ceil(len(exps) / 7))
        exps = exps[::stride]
        labels = [(f"$2^{{{e}}}$" if self.finite_max >= 2**11 else f"{2**e:g}") for e in exps]
        return [2.0**e for e in exps], labels

    def apply(self, ax: Axes) -> None:
        """Log2 scale, ticks from ``finite_ticks``, an ∞ tick and a break rule."""
        ax.set_xscale("log", base=2)
        ticks, labels = self.finite_ticks()
        ticks.append(self.inf_position)
        labels.append("∞")
        ax.set_xticks(ticks, labels=labels)
        ax.xaxis.set_minor_locator(NullLocator())
        gap = math.sqrt(self.finite_max * self.inf_position)
        ax.axvline(gap, color="0.75", linestyle=(0, (1, 2)), linewidth=0.6, zorder=0)
        margin = 2.0 ** (0.04 * math.log2(self.inf_position / self.finite_min) + 0.15)
        ax.set_xlim(self.finite_min / margin, self.inf_position * margin)
        ax.set_xlabel("number of tasks $M$")


def _split(maxis: MAxis, Ms: np.ndarray, values: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Positions and values, finite M (to be joined by a line) apart from ∞ (not joined)."""
    finite = np.isfinite(Ms)
    order = np.argsort(Ms)
    Ms, values, finite = Ms[order], values[order], finite[order]
    pos = maxis.positions(Ms)
    return (pos[finite], values[finite]), (pos[~finite], values[~finite])


def draw_loss_vs_M(
    ax: Axes,
    maxis: MAxis,
    outputs: Mapping[float, xr.Dataset],
    baselines: xr.Dataset,
    colors: Mapping[float, Color],
) -> Handles:
    """Final ID loss against M: ridge, dMMSE_M and each transformer's last checkpoint."""
    base_M = np.asarray(baselines["M"].values, dtype=np.float64)
    for var, line_style, marker in (
        ("loss_ridge_id", "--", RIDGE),
        ("loss_dmmse_id", ":", DMMSE),
    ):
        values = np.asarray(baselines[var].mean("token").transpose("M").values, dtype=np.float64)
        (fx, fy), (ix, iy) = _split(maxis, base_M, values)
        style = dict(marker, markersize=marker["markersize"] - 1.0)
        color = "black" if var == "loss_ridge_id" else "0.45"
        if var == "loss_ridge_id":
            style["markeredgecolor"] = "white"
        ax.plot(fx, fy, color=color, linestyle=line_style, linewidth=0.9, zorder=3, **style)
        ax.plot(ix, iy, color=color, linestyle="none", zorder=3, **style)
    run_M = np.array(list(outputs), dtype=np.float64)
    # (runs, seeds): one column without a seed axis
    per_seed = [np.atleast_1d(ds["loss_id"].isel(step=-1).values).astype(np.float64) for ds in outputs.values()]
    bands = [seed_band(v[:, None]) for v in per_seed]  # (median, min, max), each of shape (1,)
    final, low, high = (np.array([band[k][0] for band in bands]) for k in range(3))
    (fx, fy), _ = _split(maxis, run_M, final)
    ax.plot(fx, fy, color="0.6", linewidth=0.8, zorder=4)
    seeds = max(len(v) for v in per_seed) if per_seed else 0
    for M, value, lo, hi in zip(run_M, final, low, high):
        marker = dict(END, markersize=5.0)
        if seeds > 1:
            ax.errorbar(maxis.position(M), value, yerr=[[value - lo], [hi - value]], color=colors[M], ecolor=colors[M],
                        elinewidth=0.8, linestyle="none", zorder=5, **marker)
        else:
            ax.plot(maxis.position(M), value, color=colors[M], linestyle="none", zorder=5, **marker)
    set_log_y(ax)
    ax.set_ylabel("final in-distribution loss")
    maxis.apply(ax)
    label = f"transformer (end; median, bars min–max over {seeds} seeds)" if seeds > 1 else "transformer (end)"
    return {
        label: proxy(dict(END, markersize=5.0), linestyle="-", linewidth=0.8),
        "dMMSE$_M$": proxy(dict(DMMSE, markersize=3.0), color="0.45", linestyle=":"),
        "ridge": proxy(dict(RIDGE, markersize=4.0), color="black", linestyle="--"),
    }


def final_llc(llc: xr.Dataset, error: str) -> dict[float, tuple[float, float, Any, str]]:
    """``M → (LLC, error bar, step, status)`` of each run's final estimate (``llc.final_estimate``).

    ``error`` is ``"std"`` (``llc_std``, across chains) or ``"sem"`` (``llc_sem``).
    Runs without a final number are left out: no record, or a final estimate that
    failed (an earlier checkpoint is not a stand-in for the final model).
    """
    table = read_estimates(llc)
    result: dict[float, tuple[float, float, Any, str]] = {}
    for M in table.coords["M"]:
        final = final_estimate(table, float(M))
        if final.step is None or not math.isfinite(final.mean):
            continue
        i = int(np.flatnonzero(table.coords["M"] == M)[0])
        j = int(np.flatnonzero(table.coords["step"] == final.step)[0])
        err = final.sem if error == "sem" else float(table["llc_std"][i, j])
        result[float(M)] = (final.mean, err if math.isfinite(err) else 0.0, final.step, final.status)
    return result


def final_llc_over_seeds(llc: xr.Dataset) -> dict[float, tuple[float, float, float]]:
    """``M → (median, min, max)`` over seeds of :func:`final_llc` of each seed's ``llc.zarr`` view.

    Seeds without a sound final estimate for an M are left out of its numbers; an M
    without any is left out.
    """
    values: dict[float, list[float]] = {}
    for seed in llc[SEED].values:
        for M, (value, _err, _step, status) in final_llc(select_seed(llc, int(seed)), "std").items():
            if status == SOUND:
                values.setdefault(M, []).append(value)
    return {M: (float(np.median(v)), float(np.min(v)), float(np.max(v))) for M, v in sorted(values.items())}


def draw_llc_vs_M(
    ax: Axes, maxis: MAxis, llc: xr.Dataset, colors: Mapping[float, Color], error: str
) -> Handles:
    """LLC of each M's final checkpoint against M, with M = ∞'s LLC as a dashed line.

    Estimates that are not sound (not converged, unreliable) are drawn with their
    status marker (``_llc.STATUS_MARKERS``) around the point and stay off the line.
    With a ``seed`` dim: the median over seeds of the sound final estimates, error bars
    from the smallest to the largest seed.
    """
    if SEED in llc.dims:
        band = final_llc_over_seeds(llc)
        seeds = llc.sizes[SEED]
        final = {M: (median, (median - low, high - median), None, SOUND) for M, (median, low, high) in band.items()}
    else:
        seeds = 0
        final = final_llc(llc, error)
    Ms = np.array(sorted(final), dtype=np.float64)
    values = np.array([final[m][0] for m in Ms])
    sound = np.array([final[m][3] == SOUND for m in Ms], dtype=bool)
    (fx, fy), _ = _split(maxis, Ms[sound], values[sound])
    ax.plot(fx, fy, color="0.6", linewidth=0.8, zorder=3)
    shown: set[str] = set()
    for M in Ms:
        value, err, _step, status = final[M]
        yerr = [[err[0]], [err[1]]] if isinstance(err, tuple) else err
        ax.errorbar(
            maxis.position(M), value, yerr=yerr, color=colors[M], ecolor=colors[M],
            elinewidth=0.8, linestyle="none", zorder=5, **dict(END, markersize=5.0),
        )
        if status in STATUS_MARKERS:
            shown.add(status)
            ax.plot(maxis.position(M), value, linestyle="none", zorder=6,
                    **{**STATUS_MARKERS[status][0], "markersize": 9.0}, markeredgecolor=colors[M])
    label = f"transformer (end; median, bars min–max over {seeds} seeds)" if seeds else "transformer (end)"
    handles: Handles = {label: proxy(dict(END, markersize=5.0), linestyle="-", linewidth=0.8)}
    if math.inf in final:
        ax.axhline(final[math.inf][0], color="black", linestyle="--", linewidth=0.9, zorder=2)
        handles["LLC at $M$ = ∞"] = proxy({}, color="black", linestyle="--")
    handles |= status_legend(shown)
    ax.set_ylabel("LLC $\\hat\\lambda$ (final checkpoint)")
    maxis.apply(ax)
    return handles
