"""LLC diagnostics: SGLD loss traces (App. F) and the LLC over training (Hoogland et al.)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from ..llc import FAILED, HALF_Z_MAX, NOT_CONVERGED, RHAT_MAX, SOUND, SPIKE_RATIO, UNRELIABLE, final_estimate, read_estimates
from ._style import (
    DOUBLE_WIDTH,
    END,
    SINGLE_WIDTH,
    T_CRIT,
    Color,
    add_m_legend,
    add_marker_legend,
    format_M,
    format_number,
    new_figure,
    proxy,
    set_log_y,
    set_step_axis,
)
from ..seeds import SEED, seed_band, select_seed
from ._training import BAND_ALPHA, band_handles, draw_series, series, t_crit_index

__all__ = ["figF_llc_traces", "fig_llc_calibration", "fig_llc_over_time"]

BURN_IN_COLOR = "0.88"
# An estimate whose chains spiked or partly diverged (UNRELIABLE): a large hollow ring around its point.
_SPIKED = {"marker": "o", "markersize": 6.5, "markerfacecolor": "none", "markeredgewidth": 0.9}
# An estimate whose chains have not converged (NOT_CONVERGED): a hollow diamond, off the line.
_UNCONVERGED = {"marker": "D", "markersize": 5.5, "markerfacecolor": "none", "markeredgewidth": 0.9}
# An estimate whose chains all diverged (NaN): a cross on the bottom edge of the axes at its step.
_FAILED = {"marker": "X", "markersize": 6.0, "markeredgecolor": "black", "markeredgewidth": 0.4}
UNRELIABLE_LABEL = f"unreliable: a chain diverged or loss > {SPIKE_RATIO:.0f}× start"
UNCONVERGED_LABEL = f"not converged: R̂ > {RHAT_MAX:g} or |half z| > {HALF_Z_MAX:g}"
FAILED_LABEL = "failed: no estimate"
# marker of each status that is not sound, for every LLC figure
STATUS_MARKERS = {UNRELIABLE: (_SPIKED, UNRELIABLE_LABEL), NOT_CONVERGED: (_UNCONVERGED, UNCONVERGED_LABEL)}


def estimate_statuses(llc: xr.Dataset) -> np.ndarray:
    """``(M, step)`` status of every estimate in ``llc.zarr`` (``llc.read_estimates``; ``""`` where none)."""
    return read_estimates(llc).status


def _epsilon_label(ds: xr.Dataset) -> str:
    eps = ds.attrs.get("epsilon")
    if eps is None or isinstance(eps, str):
        return ""
    source = str(ds.attrs.get("epsilon_source", "config"))
    return f"SGLD ε = {format_number(float(eps))} ({'calibrated' if source.startswith('calibration') else 'config'})"


def _draws(trace: xr.DataArray) -> np.ndarray:
    """The draw axis values (the coordinate if the store has one, else 0, 1, …)."""
    if "draw" in trace.coords:
        return np.asarray(trace["draw"].values, dtype=np.float64)
    return np.arange(trace.sizes["draw"], dtype=np.float64)


def _draw_traces(
    ax: Axes, trace: np.ndarray, draws: np.ndarray, num_burnin: int | None, color: Any, init_loss: float | None
) -> None:
    """``trace(chain, draw)`` as one line per chain; burn-in shaded; ``ℓ_n(w*)`` dotted."""
    if num_burnin:
        # Burn-in is draw index < num_burnin; shade up to halfway to the first kept draw.
        n = len(draws)
        edge = draws[-1] if num_burnin >= n else (draws[num_burnin - 1] + draws[num_burnin]) / 2
        ax.axvspan(draws[0], edge, color=BURN_IN_COLOR, linewidth=0, zorder=0)
    for chain in np.atleast_2d(trace):
        ax.plot(draws, chain, color=color, linewidth=0.6, alpha=0.75, zorder=2)
    if init_loss is not None and math.isfinite(init_loss):
        ax.axhline(init_loss, color="black", linestyle=":", linewidth=0.8, zorder=3)
    if len(draws) > 1:
        ax.set_xlim(draws[0], draws[-1])


def _burnin(ds: xr.Dataset) -> int | None:
    value = ds.attrs.get("num_burnin")
    return None if value is None else int(value)


def _estimate(mean: float, sem: float) -> str:
    if not math.isfinite(mean):
        return "λ̂ = n/a"
    return f"λ̂ = {mean:.3g} ± {sem:.2g}" if math.isfinite(sem) else f"λ̂ = {mean:.3g}"


def _final_traces(sub: SubFigure, llc: xr.Dataset, colors: Mapping[float, Color]) -> None:
    """Each run's final estimate (``llc.final_estimate``): its SGLD traces, λ̂ ± s.e. and status."""
    table = read_estimates(llc)
    trace = llc["loss_trace"].transpose("M", "step", "chain", "draw")
    init = table["init_loss"]
    draws = _draws(trace)
    steps = list(trace["step"].values)
    rows = []
    for i, M in enumerate(trace["M"].values):
        final = final_estimate(table, float(M))
        if final.step is not None:
            rows.append((i, float(M), steps.index(final.step), final))
    rows.sort(key=lambda r: r[1])
    ncols = min(4, max(1, len(rows)))
    nrows = max(1, math.ceil(len(rows) / ncols))
    axes = sub.subplots(nrows, ncols, sharex=True, squeeze=False)
    for ax, (i, M, j, final) in zip(axes.flat, rows):
        _draw_traces(ax, trace.values[i, j], draws, _burnin(llc), colors[M], float(init[i, j]))
        note = "" if final.status == SOUND else f" ({final.status})"
        ax.set_title(f"$M$ = {format_M(M)}, step {steps[j]}\n{_estimate(final.mean, final.sem)}{note}", pad=2)
    for ax in axes.flat[len(rows) :]:
        ax.set_axis_off()
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no LLC estimate in llc.zarr", ha="center", va="center")
    for idx, ax in enumerate(axes.flat[: len(rows)]):
        # subplots(sharex=True) labels only the last row; label every panel with none below
        ax.tick_params(labelbottom=idx + ncols >= len(rows))
    sub.suptitle("final checkpoints: SGLD minibatch loss per chain (λ̂ ± s.e.)")
    sub.supxlabel("SGLD step")
    sub.supylabel("minibatch loss")


def _calibration_grid(sub: SubFigure, cal: xr.Dataset, i: int, colors: Mapping[float, Color]) -> None:
    """One calibration run's traces at its final calibration checkpoint: rows ε, columns γ, against SGLD time.

    Chains are sized in SGLD time (steps × εγ), so every ε spans the same x range and
    burn-in ends at the same place (``burnin_time``).
    """
    if "step" in cal["loss_trace"].dims:  # calibration at several checkpoints: show the final one
        cal = cal.isel(step=[-1])
    step = int(cal["step"].values[0])
    table = read_estimates(cal, ("M", "step", "epsilon", "gamma"))
    trace = cal["loss_trace"].transpose("M", "step", "epsilon", "gamma", "chain", "draw").values[i, 0]
    M = float(cal["M"].values[i])
    eps, gam = cal["epsilon"].values, cal["gamma"].values
    burnin_time = cal.attrs.get("burnin_time")
    axes = sub.subplots(len(eps), len(gam), sharex=True, squeeze=False)
    for r, e in enumerate(eps):
        for c, g in enumerate(gam):
            ax = axes[r, c]
            time = np.arange(trace.shape[-1], dtype=np.float64) * float(e) * float(g)
            burnin = None if burnin_time is None else int(np.searchsorted(time, float(burnin_time)))
            _draw_traces(ax, trace[r, c], time, burnin, colors.get(M, "0.3"), float(table["init_loss"][i, 0, r, c]))
            estimate = table.estimate((i, 0, r, c))
            note = "" if estimate.status == SOUND else f" ({estimate.status})"
            ax.set_title(_estimate(estimate.mean, estimate.sem) + note, pad=2)
            finite = np.flatnonzero(np.isfinite(trace[r, c]).any(axis=0))
            if finite.size > 1:
                ax.set_xlim(0.0, time[finite[-1]])
            if r == 0:
                ax.annotate(f"γ = {format_number(g)}", (0.5, 1.0), xycoords="axes fraction", xytext=(0, 14),
                            textcoords="offset points", ha="center", va="bottom", fontweight="bold")
            if c == 0:
                ax.set_ylabel(f"ε = {format_number(e)}", fontweight="bold")
            if r < len(eps) - 1:
                ax.tick_params(labelbottom=False)
    sub.suptitle(f"calibration at $M$ = {format_M(M)}, step {step}: SGLD minibatch loss per chain (rows ε, columns γ)")
    sub.supxlabel("SGLD time (steps × εγ)")


def figF_llc_traces(
    llc: xr.Dataset, calibration: xr.Dataset | None, colors: Mapping[float, Color]
) -> Figure:
    """SGLD loss traces of the final checkpoints and, if given, of the (ε, γ) calibration grid."""
    n_final = llc.sizes["M"]
    final_rows = max(1, math.ceil(n_final / 4))
    heights = [1.5 * final_rows + 0.7]
    n_cal = 0 if calibration is None else calibration.sizes["M"]
    if calibration is not None:
        n_eps = calibration.sizes["epsilon"]
        heights += [1.25 * n_eps + 0.8] * n_cal
    fig = new_figure(DOUBLE_WIDTH, sum(heights) + 0.3)
    subs = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    _final_traces(subs[0], llc, colors)
    for k in range(n_cal):
        assert calibration is not None
        _calibration_grid(subs[1 + k], calibration, k, colors)
    add_marker_legend(
        fig,
        {
            "SGLD chain": proxy({}, linestyle="-", linewidth=0.8),
            "burn-in (discarded)": proxy({"marker": "s", "markersize": 7.0}, color=BURN_IN_COLOR),
            "$\\ell_n(w^*)$ (loss at the checkpoint)": proxy({}, color="black", linestyle=":"),
        },
    )
    return fig


def fig_llc_over_time(
    llc: xr.Dataset,
    outputs: Mapping[float, xr.Dataset],
    colors: Mapping[float, Color],
    window: int,
    error: str,
) -> Figure:
    """LLC over training (top) above the in-distribution loss (bottom), per M."""
    fig = new_figure(SINGLE_WIDTH, 4.4)
    ax_llc, ax_loss = fig.subplots(2, 1, sharex=True)
    seeds = llc.sizes.get(SEED, 0)
    steps = np.asarray(llc["step"].values)
    shown: set[str] = set()
    if seeds:  # the bands replace the per-estimate points
        _draw_llc_seed_bands(ax_llc, llc, colors)
        table, rows = None, []
    else:
        table = read_estimates(llc)
        rows = np.argsort(table.coords["M"])
    for i in rows:
        M = float(table.coords["M"][i])
        row = table["llc_mean"][i]
        spread = table["llc_sem"][i] if error == "sem" else table["llc_std"][i]
        err = np.where(np.isfinite(spread), spread, 0.0)
        status = table.status[i]
        sound = status == SOUND
        if sound.any():
            ax_llc.errorbar(
                steps[sound], row[sound], yerr=err[sound], color=colors[M], linewidth=0.9,
                elinewidth=0.6, marker="o", markersize=2.5, zorder=3,
            )
        for name, (marker, _) in STATUS_MARKERS.items():
            bad = status == name
            if bad.any():
                shown.add(name)
                ax_llc.errorbar(steps[bad], row[bad], yerr=err[bad], color=colors[M], linestyle="none",
                                elinewidth=0.5, alpha=0.6, zorder=3)
                ax_llc.plot(steps[bad], row[bad], linestyle="none", zorder=4, **marker, markeredgecolor=colors[M])
        lost = status == FAILED
        if lost.any():
            shown.add(FAILED)
            ax_llc.plot(steps[lost], np.full(lost.sum(), 0.02), linestyle="none", zorder=5, clip_on=False,
                        transform=ax_llc.get_xaxis_transform(), **{**_FAILED, "markerfacecolor": colors[M]})
    if label := _epsilon_label(llc):
        ax_llc.set_title(label, loc="right", fontsize="small", pad=2)
    ax_llc.set_ylabel("LLC $\\hat\\lambda$")
    for M, ds in outputs.items():
        s, loss = series(ds, "loss_id", window)
        loss = draw_series(ax_loss, s, loss, colors[M], M, zorder=2)
        j = t_crit_index(ds, s)
        if j is not None:
            ax_loss.plot(s[j], loss[j], color=colors[M], linestyle="none", zorder=4, **T_CRIT)
    set_log_y(ax_loss)
    ax_loss.set_ylabel("in-distribution loss")
    set_step_axis(ax_llc, label=False)
    set_step_axis(ax_loss)
    ax_llc.tick_params(labelbottom=False)
    add_m_legend(fig, [ax_llc, ax_loss], colors)
    llc_label = "LLC ± " + ("s.e.m." if error == "sem" else "s.d. across chains")
    if seeds:
        llc_label = "LLC (sound estimates only)"
    add_marker_legend(
        fig,
        {
            llc_label: proxy(dict(END, markersize=2.5), linestyle="-"),
            "$t_{\\mathrm{crit}}$": proxy(T_CRIT),
            **band_handles(outputs),
            **status_legend(shown),
        },
        ncols=1 if seeds else 2,
    )
    return fig


def status_legend(shown: set[str]) -> dict[str, Any]:
    """Legend entries for the marks of the statuses in ``shown`` (not-sound estimates)."""
    entries = {label: proxy(marker) for name, (marker, label) in STATUS_MARKERS.items() if name in shown}
    if FAILED in shown:
        entries[FAILED_LABEL] = proxy(_FAILED)
    return entries


def _draw_llc_seed_bands(ax: Axes, llc: xr.Dataset, colors: Mapping[float, Color]) -> None:
    """Per M, the median over seeds of the sound estimates at each step, over a min–max band."""
    per_seed = []
    for seed in llc[SEED].values:
        one = select_seed(llc, int(seed))
        mean = one["llc_mean"].transpose("M", "step").values.astype(np.float64)
        per_seed.append(np.where(estimate_statuses(one) == SOUND, mean, np.nan))
    values = np.stack(per_seed)  # (seed, M, step)
    steps = np.asarray(llc["step"].values)
    for i in np.argsort(llc["M"].values):
        M = float(llc["M"].values[i])
        median, low, high = seed_band(values[:, i])
        ok = np.isfinite(median)
        if ok.any():
            ax.fill_between(steps[ok], low[ok], high[ok], color=colors[M], alpha=BAND_ALPHA, linewidth=0, zorder=2)
            ax.plot(steps[ok], median[ok], color=colors[M], linewidth=0.9, marker="o", markersize=2.5, zorder=3)


def fig_llc_calibration(cal: xr.Dataset, colors: Mapping[float, Color]) -> Figure:
    """The ε calibration: estimate (top row per M) and trace peak (bottom row) against ε, per checkpoint.

    Filled markers: accepted by the rule (``llc.choose_epsilon``); hollow circles:
    sound but not on the plateau; diamonds: not converged; rings: unreliable (a
    chain diverged or the SGLD loss exceeded ``SPIKE_RATIO`` × the start loss);
    crosses on the bottom edge: no estimate. A panel titled "no plateau" is a point
    the rule leaves out. The dashed vertical line is the chosen ε.
    """
    gamma = float(cal.attrs.get("chosen_gamma", float(cal["gamma"].values[0])))
    at = cal.sel(gamma=gamma)
    table = read_estimates(at, ("M", "step", "epsilon"))
    Ms = [float(m) for m in at["M"].values]
    steps = [int(s) for s in at["step"].values]
    eps = np.asarray(at["epsilon"].values, dtype=np.float64)
    chosen = float(cal["chosen_epsilon"]) if "chosen_epsilon" in cal else math.nan
    eligible = at["eligible"].transpose("M", "step").values if "eligible" in at else np.ones((len(Ms), len(steps)), bool)
    fig = new_figure(DOUBLE_WIDTH, 0.6 + 2.3 * len(Ms))
    axes = fig.subplots(2 * len(Ms), len(steps), sharex=True, squeeze=False)
    shown: set[str] = set()
    for a, M in enumerate(Ms):
        color = colors.get(M, "0.3")
        for s, step in enumerate(steps):
            mean, peak, status = table["llc_mean"][a, s], table["trace_peak"][a, s], table.status[a, s]
            sem = np.nan_to_num(table["llc_sem"][a, s])
            accepted = at["accepted"].transpose("M", "step", "epsilon").values[a, s].astype(bool)
            ax_llc, ax_peak = axes[2 * a, s], axes[2 * a + 1, s]
            finite = np.isfinite(mean)
            ax_llc.errorbar(eps[finite], mean[finite], yerr=sem[finite], color=color, linewidth=0.8,
                            elinewidth=0.6, zorder=2)
            ax_peak.plot(eps[np.isfinite(peak)], peak[np.isfinite(peak)], color=color, linewidth=0.8, zorder=2)
            for ax, y in ((ax_llc, mean), (ax_peak, peak)):
                ok = np.isfinite(y)
                ax.plot(eps[ok & accepted], y[ok & accepted], linestyle="none", marker="o", markersize=4,
                        color=color, markeredgecolor="black", markeredgewidth=0.4, zorder=3)
                plain = ok & (status == SOUND) & ~accepted
                ax.plot(eps[plain], y[plain], linestyle="none", marker="o",
                        markersize=4, markerfacecolor="white", markeredgecolor=color, zorder=3)
                for name, (marker, _) in STATUS_MARKERS.items():
                    bad = ok & (status == name)
                    shown.update([name] if bad.any() else [])
                    ax.plot(eps[bad], y[bad], linestyle="none", zorder=3, **marker, markeredgecolor=color)
                lost = status == FAILED
                if lost.any():
                    shown.add(FAILED)
                    ax.plot(eps[lost], np.full(lost.sum(), 0.04), linestyle="none", clip_on=False, zorder=5,
                            transform=ax.get_xaxis_transform(), **{**_FAILED, "markerfacecolor": color})
                if math.isfinite(chosen):
                    ax.axvline(chosen, color="black", linestyle="--", linewidth=0.8, zorder=1)
            ax_peak.axhline(SPIKE_RATIO, color="0.5", linestyle=":", linewidth=0.8, zorder=1)
            ax_peak.set_yscale("log")
            ax_peak.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax_peak.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax_peak.yaxis.set_minor_formatter(NullFormatter())
            ax_llc.set_xscale("log")
            pad = (eps[-1] / eps[0]) ** 0.12 if len(eps) > 1 else 1.5  # keep the end points off the frame
            ax_llc.set_xlim(eps[0] / pad, eps[-1] * pad)
            ax_llc.set_xticks(eps, [format_number(e) for e in eps])
            ax_llc.xaxis.set_minor_locator(NullLocator())
            ax_llc.set_title(f"$M$ = {format_M(M)}, step {step}" + ("" if eligible[a, s] else "\nno plateau: left out"),
                             pad=2, color="black" if eligible[a, s] else "0.4")
            if s == 0:
                ax_llc.set_ylabel("LLC $\\hat\\lambda$")
                ax_peak.set_ylabel("trace peak /\n$\\ell_n(w^*)$")
    for ax in axes[-1]:
        ax.set_xlabel("SGLD step size ε")
    satisfied = bool(int(cal.attrs.get("rule_satisfied", 0)))
    verdict = "rule satisfied" if satisfied else "RULE NOT SATISFIED: fallback choice"
    length = cal.attrs.get("burnin_time"), cal.attrs.get("draw_time")
    chains = f"; chains {length[0]:g} + {length[1]:g} × 1/(εγ) steps" if None not in length else ""
    fig.suptitle(f"ε calibration at γ = {format_number(gamma)}, nβ = {format_number(float(cal.attrs.get('nbeta', math.nan)))}: "
                 f"chosen ε = {format_number(chosen)} ({verdict}){chains}")
    add_marker_legend(
        fig,
        {
            "accepted (sound, on the plateau)": proxy({"marker": "o", "markersize": 4, "markeredgecolor": "black"}),
            "sound, not accepted (or the smallest ε)": proxy({"marker": "o", "markersize": 4, "markerfacecolor": "white"}),
            **status_legend(shown),
            "chosen ε": proxy({}, color="black", linestyle="--"),
            f"spike limit ({SPIKE_RATIO:.0f}×)": proxy({}, color="0.5", linestyle=":"),
        },
        ncols=3,
    )
    return fig
