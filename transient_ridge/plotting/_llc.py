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

from ..llc_health import FAILED, SOUND, SPIKE_RATIO, UNRELIABLE, estimate_status, trace_peak_ratio
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
# An estimate whose chains spiked (llc_health.SPIKE_RATIO): a large hollow ring around its point.
_SPIKED = {"marker": "o", "markersize": 6.5, "markerfacecolor": "none", "markeredgewidth": 0.9}
# An estimate whose chains all diverged (NaN): a cross on the bottom edge of the axes at its step.
_FAILED = {"marker": "X", "markersize": 6.0, "markeredgecolor": "black", "markeredgewidth": 0.4}
UNRELIABLE_LABEL = f"unreliable (chains diverged or SGLD loss > {SPIKE_RATIO:.0f}× start): not on the line"
FAILED_LABEL = "failed: every SGLD chain diverged (no estimate)"


def _trace_peaks(llc: xr.Dataset) -> np.ndarray:
    """``(M, step)`` peak SGLD loss over start loss (NaN where the store has no traces)."""
    shape = (llc.sizes["M"], llc.sizes["step"])
    if "loss_trace" not in llc or "init_loss" not in llc:
        return np.full(shape, np.nan)
    trace = llc["loss_trace"].transpose("M", "step", "chain", "draw").values
    return trace_peak_ratio(trace, llc["init_loss"].transpose("M", "step").values)


def estimate_statuses(llc: xr.Dataset) -> np.ndarray:
    """``(M, step)`` health (``llc_health.estimate_status``) of every estimate in ``llc.zarr``.

    Steps a run has no record of (outer-joined) come out ``failed`` only when the
    store records ``failed_chains`` there; otherwise they are left ``""`` (absent).
    """
    mean = llc["llc_mean"].transpose("M", "step").values
    failed = (
        llc["failed_chains"].transpose("M", "step").values.astype(np.float64)
        if "failed_chains" in llc
        else np.full(mean.shape, np.nan)
    )
    status = estimate_status(mean, failed, _trace_peaks(llc))
    recorded = np.isfinite(failed) if "failed_chains" in llc else np.isfinite(mean)
    return np.where(recorded, status, "")


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


def _final_trace_step(llc: xr.Dataset, i: int) -> int | None:
    """Index of the last step of M-row ``i`` with a finite LLC (else with any finite trace)."""
    mean = np.asarray(llc["llc_mean"].transpose("M", "step").values[i], dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(mean))
    if ok.size:
        return int(ok[-1])
    trace = llc["loss_trace"].transpose("M", "step", "chain", "draw").values[i]
    ok = np.flatnonzero(np.isfinite(trace).any(axis=(1, 2)))
    return int(ok[-1]) if ok.size else None


def _estimate(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "λ̂ = n/a"
    return f"λ̂ = {mean:.3g} ± {std:.2g}" if math.isfinite(std) else f"λ̂ = {mean:.3g}"


def _final_traces(sub: SubFigure, llc: xr.Dataset, colors: Mapping[float, Color]) -> None:
    trace = llc["loss_trace"].transpose("M", "step", "chain", "draw")
    mean = llc["llc_mean"].transpose("M", "step").values
    std = llc["llc_std"].transpose("M", "step").values
    init = llc["init_loss"].transpose("M", "step").values if "init_loss" in llc else None
    draws = _draws(trace)
    rows = [(i, float(M), j) for i, M in enumerate(trace["M"].values) if (j := _final_trace_step(llc, i)) is not None]
    rows.sort(key=lambda r: r[1])
    ncols = min(4, max(1, len(rows)))
    nrows = max(1, math.ceil(len(rows) / ncols))
    axes = sub.subplots(nrows, ncols, sharex=True, squeeze=False)
    steps = trace["step"].values
    for ax, (i, M, j) in zip(axes.flat, rows):
        _draw_traces(ax, trace.values[i, j], draws, _burnin(llc), colors[M], None if init is None else float(init[i, j]))
        ax.set_title(f"$M$ = {format_M(M)}, step {steps[j]}\n{_estimate(float(mean[i, j]), float(std[i, j]))}", pad=2)
    for ax in axes.flat[len(rows) :]:
        ax.set_axis_off()
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no LLC estimate in llc.zarr", ha="center", va="center")
    for idx, ax in enumerate(axes.flat[: len(rows)]):
        # subplots(sharex=True) labels only the last row; label every panel with none below
        ax.tick_params(labelbottom=idx + ncols >= len(rows))
    sub.suptitle("final checkpoints: SGLD minibatch loss per chain")
    sub.supxlabel("SGLD draw")
    sub.supylabel("minibatch loss")


def _calibration_grid(sub: SubFigure, cal: xr.Dataset, i: int, colors: Mapping[float, Color]) -> None:
    where = ""
    if "step" in cal["loss_trace"].dims:  # calibration at several checkpoints: show the final one
        cal = cal.isel(step=-1)
        where = f", step {int(cal['step'])}"
    trace = cal["loss_trace"].transpose("M", "epsilon", "gamma", "chain", "draw")
    M = float(trace["M"].values[i])
    eps, gam = trace["epsilon"].values, trace["gamma"].values
    mean = cal["llc_mean"].transpose("M", "epsilon", "gamma").values[i]
    std = cal["llc_std"].transpose("M", "epsilon", "gamma").values[i]
    init = float(np.asarray(cal["init_loss"].values).reshape(-1)[i]) if "init_loss" in cal else None
    draws = _draws(trace)
    axes = sub.subplots(len(eps), len(gam), sharex=True, squeeze=False)
    for r, e in enumerate(eps):
        for c, g in enumerate(gam):
            ax = axes[r, c]
            _draw_traces(ax, trace.values[i, r, c], draws, _burnin(cal), colors.get(M, "0.3"), init)
            ax.set_title(_estimate(float(mean[r, c]), float(std[r, c])), pad=2)
            if r == 0:
                ax.annotate(f"γ = {format_number(g)}", (0.5, 1.0), xycoords="axes fraction", xytext=(0, 14),
                            textcoords="offset points", ha="center", va="bottom", fontweight="bold")
            if c == 0:
                ax.set_ylabel(f"ε = {format_number(e)}", fontweight="bold")
            if r < len(eps) - 1:
                ax.tick_params(labelbottom=False)
    sub.suptitle(f"calibration at $M$ = {format_M(M)}{where}: SGLD minibatch loss per chain (rows ε, columns γ)")
    sub.supxlabel("SGLD draw")


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
    mean = llc["llc_mean"].transpose("M", ...)
    std = llc["llc_std"].transpose("M", ...).values
    steps = np.asarray(mean["step"].values)
    chains = llc["llc_chain"].transpose("M", "step", "chain").values if "llc_chain" in llc and SEED not in llc.dims else None
    seeds = llc.sizes.get(SEED, 0)
    status = estimate_statuses(llc) if not seeds else np.empty((0, 0), dtype=str)
    any_unreliable = any_failed = False
    if seeds:
        _draw_llc_seed_bands(ax_llc, llc, colors)
    rows = [] if seeds else np.argsort(mean["M"].values)  # with seeds the bands replace the per-estimate points
    for i in rows:
        M = float(mean["M"].values[i])
        row = np.asarray(mean.values[i], dtype=np.float64)
        err = np.where(np.isfinite(std[i]), std[i], 0.0)
        if error == "sem":
            healthy = np.isfinite(chains[i]).sum(axis=-1) if chains is not None else int(llc.attrs.get("num_chains", 1))
            err = err / np.sqrt(np.maximum(healthy, 1))
        sound = status[i] == SOUND
        if sound.any():
            ax_llc.errorbar(
                steps[sound], row[sound], yerr=err[sound], color=colors[M], linewidth=0.9,
                elinewidth=0.6, marker="o", markersize=2.5, zorder=3,
            )
        bad = status[i] == UNRELIABLE
        if bad.any():
            any_unreliable = True
            ax_llc.errorbar(steps[bad], row[bad], yerr=err[bad], color=colors[M], linestyle="none",
                            elinewidth=0.5, alpha=0.6, zorder=3)
            ax_llc.plot(steps[bad], row[bad], linestyle="none", zorder=4, **_SPIKED, markeredgecolor=colors[M])
        lost = status[i] == FAILED
        if lost.any():
            any_failed = True
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
            **({UNRELIABLE_LABEL: proxy(_SPIKED)} if any_unreliable else {}),
            **({FAILED_LABEL: proxy(_FAILED)} if any_failed else {}),
        },
        ncols=1 if seeds else 2,
    )
    return fig


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

    Filled markers: accepted by the rule (llc_calibration); hollow: healthy but
    not on the plateau; rings: unhealthy (a chain diverged or the SGLD loss
    exceeded ``SPIKE_RATIO`` × the start loss); crosses on the bottom edge:
    every chain diverged. The dashed vertical line is the chosen ε.
    """
    gamma = float(cal.attrs.get("chosen_gamma", float(cal["gamma"].values[0])))
    at = cal.sel(gamma=gamma)
    Ms = [float(m) for m in at["M"].values]
    steps = [int(s) for s in at["step"].values]
    eps = np.asarray(at["epsilon"].values, dtype=np.float64)
    chosen = float(cal["chosen_epsilon"]) if "chosen_epsilon" in cal else math.nan
    fig = new_figure(DOUBLE_WIDTH, 0.6 + 2.3 * len(Ms))
    axes = fig.subplots(2 * len(Ms), len(steps), sharex=True, squeeze=False)
    for a, M in enumerate(Ms):
        color = colors.get(M, "0.3")
        for s, step in enumerate(steps):
            point = at.sel(M=M, step=step)
            mean = point["llc_mean"].values.astype(np.float64)
            sem = np.nan_to_num(point["llc_sem"].values.astype(np.float64)) if "llc_sem" in point else np.zeros_like(mean)
            peak = point["trace_peak"].values.astype(np.float64)
            healthy = point["healthy"].values.astype(bool)
            accepted = point["accepted"].values.astype(bool)
            ax_llc, ax_peak = axes[2 * a, s], axes[2 * a + 1, s]
            finite = np.isfinite(mean)
            ax_llc.errorbar(eps[finite], mean[finite], yerr=sem[finite], color=color, linewidth=0.8,
                            elinewidth=0.6, zorder=2)
            ax_peak.plot(eps[np.isfinite(peak)], peak[np.isfinite(peak)], color=color, linewidth=0.8, zorder=2)
            for ax, y in ((ax_llc, mean), (ax_peak, peak)):
                ok = np.isfinite(y)
                ax.plot(eps[ok & accepted], y[ok & accepted], linestyle="none", marker="o", markersize=4,
                        color=color, markeredgecolor="black", markeredgewidth=0.4, zorder=3)
                ax.plot(eps[ok & healthy & ~accepted], y[ok & healthy & ~accepted], linestyle="none", marker="o",
                        markersize=4, markerfacecolor="white", markeredgecolor=color, zorder=3)
                ax.plot(eps[ok & ~healthy], y[ok & ~healthy], linestyle="none", zorder=3, **_SPIKED,
                        markeredgecolor=color)
                if (~ok).any():
                    ax.plot(eps[~ok], np.full((~ok).sum(), 0.04), linestyle="none", clip_on=False, zorder=5,
                            transform=ax.get_xaxis_transform(), **{**_FAILED, "markerfacecolor": color})
                if math.isfinite(chosen):
                    ax.axvline(chosen, color="black", linestyle="--", linewidth=0.8, zorder=1)
            ax_peak.axhline(SPIKE_RATIO, color="0.5", linestyle=":", linewidth=0.8, zorder=1)
            ax_peak.set_yscale("log")
            ax_peak.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax_peak.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax_peak.yaxis.set_minor_formatter(NullFormatter())
            ax_llc.set_xscale("log")
            ax_llc.set_xticks(eps, [format_number(e) for e in eps])
            ax_llc.xaxis.set_minor_locator(NullLocator())
            ax_llc.set_title(f"$M$ = {format_M(M)}, step {step}", pad=2)
            if s == 0:
                ax_llc.set_ylabel("LLC $\\hat\\lambda$")
                ax_peak.set_ylabel("trace peak /\n$\\ell_n(w^*)$")
    for ax in axes[-1]:
        ax.set_xlabel("SGLD step size ε")
    satisfied = bool(int(cal.attrs.get("rule_satisfied", 0)))
    verdict = "rule satisfied" if satisfied else "RULE NOT SATISFIED: fallback choice"
    fig.suptitle(f"ε calibration at γ = {format_number(gamma)}, nβ = {format_number(float(cal.attrs.get('nbeta', math.nan)))}: "
                 f"chosen ε = {format_number(chosen)} ({verdict})")
    add_marker_legend(
        fig,
        {
            "accepted (healthy, on the plateau)": proxy({"marker": "o", "markersize": 4, "markeredgecolor": "black"}),
            "healthy, not on the plateau": proxy({"marker": "o", "markersize": 4, "markerfacecolor": "white"}),
            "unhealthy (diverged chain or spike)": proxy(_SPIKED),
            "every chain diverged": proxy(_FAILED),
            "chosen ε": proxy({}, color="black", linestyle="--"),
            f"spike limit ({SPIKE_RATIO:.0f}×)": proxy({}, color="0.5", linestyle=":"),
        },
        ncols=3,
    )
    return fig
