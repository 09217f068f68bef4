"""Figures: every name renders from synthetic stores in the docs/stores.md layout.

The synthetic stores mimic the paper's story (small M go to dMMSE_M, middle M
pass near ridge first, large M stay at ridge) only roughly: these tests check
that figures draw and save, the invariants of ``smooth`` and ``m_colors``, and
(section "content") that what each figure draws equals the store values it
claims to show, that every axes has data and a label, and that every axes of the
rendered PNG has ink; not the science.
"""

from __future__ import annotations

import importlib.util
import math
import struct
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from conftest import TINY_BLOCK
from family_stores import with_family_fit
from llc_stores import restatus
from transient_ridge.llc import choose_epsilon, estimate_status, trace_peak_ratio
from transient_ridge.plotting._style import format_number
from transient_ridge.figures import (
    FIGURE_GROUPS,
    FIGURE_NAMES,
    FIGURE_OPTIONAL_STORES,
    FIGURE_STORES,
    FigureInputs,
    FigureSettings,
    MissingStoreError,
    draw_figure,
    format_M,
    m_colors,
    save_figure,
    smooth,
)

SCRIPT = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "plot_figure.py"
PAPER_NAMES = {
    "fig1_ood_loss", "fig1_distances", "fig1_pca", "fig3_loss_vs_M", "fig3_llc_vs_M",
    "figB_id_loss", "figC_pca_pairs", "figE_token_loadings", "figF_llc_traces",
    "fig_llc_over_time", "fig_llc_calibration", "fig_predictor_fit", "fig1", "fig3",
}  # fmt: skip


# --------------------------------------------------------------------------- synthetic stores


def checkpoint_steps(total: int, n_log: int, n_linear: int) -> np.ndarray:
    """Union of log-spaced and linear steps, as the training schedule makes them."""
    log = np.floor(total ** (np.arange(n_log) / (n_log - 1))).astype(np.int64)
    linear = np.linspace(0, total, n_linear).astype(np.int64)
    return np.unique(np.concatenate([[0], log, linear]))


def synthetic_inputs(
    M_values: tuple[float, ...] = (1.0, 8.0, 64.0, math.inf),
    *,
    n_log: int = 12,
    n_linear: int = 9,
    K: int = 4,
    n_sequences: int = 6,
    n_pcs: int = 4,
    llc_steps: int = 2,
    n_chains: int = 2,
    n_draws: int = 30,
    num_burnin: int = 10,
    calibration_grid: tuple[int, int] = (2, 2),
    seed: int = 0,
) -> FigureInputs:
    """Every store, in memory, in the docs/stores.md layout."""
    rng = np.random.default_rng(seed)
    steps = checkpoint_steps(2000, n_log, n_linear)
    tokens = np.arange(1, K + 1)
    attrs = {"experiment": "synthetic", "config": "{}", "code_version": "0+test"}
    Ms = np.array(M_values, dtype=np.float64)
    finite = Ms[np.isfinite(Ms)]
    log_t = np.log1p(steps)

    # Baselines: ridge is M-independent on OOD data, dMMSE_M is bad OOD for small M.
    ridge_id = 1.0 + 0.2 / (1 + tokens)
    loss_ridge_id = np.stack([ridge_id * (1.0 + 0.05 * rng.random()) for _ in Ms])
    loss_dmmse_id = np.stack(
        [ridge_id * (1.0 if math.isinf(M) else 0.3 + 0.7 * (1 - 1 / (1 + np.log2(M)))) for M in Ms]
    )
    loss_dmmse_ood = np.stack(
        [ridge_id * (1.0 if math.isinf(M) else 1.0 + 8.0 / (1 + np.log2(M))) for M in Ms]
    )
    baselines = xr.Dataset(
        {
            "ridge_root": (("sequence", "token"), rng.normal(size=(n_sequences, K))),
            "ridge_ood": (("ood_sequence", "token"), rng.normal(size=(5, K))),
            "ridge_id": (("M", "id_sequence", "token"), rng.normal(size=(len(Ms), 5, K))),
            "dmmse_root": (("M", "sequence", "token"), rng.normal(size=(len(Ms), n_sequences, K))),
            "dmmse_ood": (("M", "ood_sequence", "token"), rng.normal(size=(len(Ms), 5, K))),
            "dmmse_id": (("M", "id_sequence", "token"), rng.normal(size=(len(Ms), 5, K))),
            "loss_ridge_ood": ("token", ridge_id),
            "loss_ridge_id": (("M", "token"), loss_ridge_id),
            "loss_dmmse_ood": (("M", "token"), loss_dmmse_ood),
            "loss_dmmse_id": (("M", "token"), loss_dmmse_id),
        },
        coords={"M": Ms, "token": tokens},
        attrs=dict(attrs, D=3, K=K, noise_variance=0.125),
    )

    # Runs: weight on ridge rises early, weight on dMMSE_M later (never for M = ∞).
    outputs: dict[float, xr.Dataset] = {}
    trajectories = []
    for i, M in enumerate(Ms):
        learn = 1 / (1 + np.exp(-(log_t - 4.0) * 2))
        t_switch = np.inf if math.isinf(M) else 4.5 + 0.6 * np.log2(M)
        to_dmmse = 1 / (1 + np.exp(-(log_t - t_switch) * 2)) if math.isfinite(t_switch) else 0 * log_t
        noise = 1 + 0.04 * rng.normal(size=len(steps))
        ood = (9.0 * (1 - learn) + learn * ((1 - to_dmmse) * 1.15 + to_dmmse * loss_dmmse_ood[i].mean())) * noise
        idl = (9.0 * (1 - learn) + learn * ((1 - to_dmmse) * 1.15 + to_dmmse * loss_dmmse_id[i].mean())) * noise
        d_ridge = (0.02 + 5 * (1 - learn) + 2 * to_dmmse) * noise
        d_dmmse = (0.02 + 5 * (1 - learn) + 2 * (1 - to_dmmse) * (0 if math.isinf(M) else 1)) * noise
        per_token = np.linspace(1.3, 0.7, K)
        outputs[float(M)] = xr.Dataset(
            {
                "loss_ood": ("step", ood),
                "loss_id": ("step", idl),
                "loss_ood_token": (("step", "token"), np.outer(ood, per_token)),
                "loss_id_token": (("step", "token"), np.outer(idl, per_token)),
                "dist_ridge": ("step", d_ridge),
                "dist_dmmse": ("step", d_dmmse),
                "dist_ridge_token": (("step", "token"), np.outer(d_ridge, per_token)),
                "dist_dmmse_token": (("step", "token"), np.outer(d_dmmse, per_token)),
                "pred_root": (("step", "sequence", "token"), rng.normal(size=(len(steps), n_sequences, K))),
            },
            coords={"step": steps, "token": tokens, "sequence": np.arange(n_sequences)},
            attrs=dict(attrs, M=float(M), t_crit=int(steps[np.argmin(ood)])),
        )
        outputs[float(M)] = with_family_fit(outputs[float(M)], seed=i)
        angle = np.pi * (0.2 + 0.6 * to_dmmse) + 0.1 * i
        radius = 4 * (1 - learn) + 1
        path = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
        extra = 0.3 * np.cumsum(rng.normal(size=(len(steps), max(0, n_pcs - 2))), axis=0) / len(steps) ** 0.5
        trajectories.append(np.concatenate([path, extra], axis=-1)[:, :n_pcs])

    n_features = n_sequences * K
    evr = np.sort(rng.random(n_pcs))[::-1]
    evr = 0.8 * evr / evr.sum()
    loadings = rng.random((n_pcs, K))
    predictor_labels = ["ridge"] + [f"dmmse_M{format_M(M)}" for M in finite]
    pca = xr.Dataset(
        {
            "trajectory": (("M", "step", "pc"), np.stack(trajectories)),
            "explained_variance_ratio": ("pc", evr),
            "components": (("pc", "feature"), rng.normal(size=(n_pcs, n_features))),
            "token_loadings": (("pc", "token"), loadings / loadings.sum(axis=1, keepdims=True)),
            "mean": ("feature", rng.normal(size=n_features)),
            "predictor_projection": (("predictor", "pc"), rng.normal(size=(len(predictor_labels), n_pcs))),
        },
        coords={
            "M": Ms,
            "step": steps,
            "pc": np.arange(1, n_pcs + 1),
            "token": tokens,
            "feature": np.arange(n_features),
            "feature_sequence": ("feature", np.repeat(np.arange(n_sequences), K)),
            "feature_token": ("feature", np.tile(tokens, n_sequences)),
            "predictor": predictor_labels,
        },
        attrs=attrs,
    )

    sgld = dict(
        attrs, epsilon=1e-4, gamma=100.0, nbeta=10.0, n=1000, beta=0.01, num_chains=n_chains,
        num_burnin=num_burnin, num_draws=n_draws - num_burnin, steps_between_draws=1, batch_size=32, seed=0,
    )  # fmt: skip
    llc_at = steps[np.linspace(len(steps) // 2, len(steps) - 1, llc_steps).astype(int)]

    def traces(shape: tuple[int, ...], init: np.ndarray) -> np.ndarray:
        draws = np.arange(n_draws)
        rise = 1 - np.exp(-draws / (num_burnin / 2))
        return init[..., None, None] + 0.3 * rise + 0.03 * rng.normal(size=(*shape, n_chains, n_draws))

    llc_values = np.full((len(Ms), len(steps)), np.nan)
    for i, M in enumerate(Ms):
        final = 20.0 if math.isinf(M) else 5.0 + 4.0 * np.log2(M)
        llc_values[i, np.isin(steps, llc_at)] = final * np.linspace(0.7, 1.0, llc_steps)
    llc_chain = llc_values[..., None] + rng.normal(size=(len(Ms), len(steps), n_chains))
    init_loss = np.where(np.isfinite(llc_values), 1.0, np.nan)
    recorded = np.isfinite(llc_values)
    loss_trace = traces((len(Ms), len(steps)), init_loss)
    diagnostics = {name: (("M", "step"), np.where(recorded, value, np.nan))
                   for name, value in (("rhat", 1.0), ("half_z", 0.0), ("mala_acceptance", 0.6))}
    spread = llc_chain.std(axis=-1, ddof=1) if n_chains > 1 else np.full(llc_values.shape, np.nan)
    llc = restatus(xr.Dataset(
        {
            "llc_mean": (("M", "step"), llc_chain.mean(axis=-1)),
            "llc_std": (("M", "step"), spread),
            "llc_sem": (("M", "step"), spread / math.sqrt(n_chains)),
            "llc_chain": (("M", "step", "chain"), llc_chain),
            "init_loss": (("M", "step"), init_loss),
            "loss_trace": (("M", "step", "chain", "draw"), loss_trace),
            "failed_chains": (("M", "step"), np.where(recorded, 0, -1)),
            "trace_peak": (("M", "step"), trace_peak_ratio(loss_trace, init_loss)),
            **diagnostics,
        },
        coords={"M": Ms, "step": steps, "chain": np.arange(n_chains), "draw": np.arange(n_draws)},
        attrs=sgld,
    ))

    n_eps, n_gamma = calibration_grid
    cal_M = Ms[:1]
    cal_steps = llc_at
    shape = (len(cal_M), len(cal_steps), n_eps, n_gamma)
    cal_init = np.ones(shape)
    cal_mean = rng.uniform(5, 15, size=shape)
    cal_peak = rng.uniform(1.5, 3.0, size=shape)
    cal_peak[..., -1, :] = 30.0  # the largest epsilon spikes
    failed = np.zeros(shape, dtype=np.int64)
    ones = np.ones(shape)
    cal_status = estimate_status(cal_mean, failed, cal_peak, ones, 0 * ones)
    choice = choose_epsilon(
        np.logspace(-5, -4, n_eps), cal_mean[..., 0].reshape(-1, n_eps), 0.05 * cal_mean[..., 0].reshape(-1, n_eps),
        cal_status[..., 0].reshape(-1, n_eps),
    )
    dims3, dims4 = ("M", "step", "epsilon"), ("M", "step", "epsilon", "gamma")
    llc_calibration = xr.Dataset(
        {
            "llc_mean": (dims4, cal_mean),
            "llc_std": (dims4, 0.1 * cal_mean),
            "llc_sem": (dims4, 0.05 * cal_mean),
            "failed_chains": (dims4, failed),
            "trace_peak": (dims4, cal_peak),
            "rhat": (dims4, ones),
            "half_z": (dims4, 0 * ones),
            "mala_acceptance": (dims4, 0.6 * ones),
            "loss_trace": ((*dims4, "chain", "draw"), traces(shape, cal_init)),
            "init_loss": (dims4, cal_init),
            "healthy": (dims3, choice.healthy.reshape(shape[:3])),
            "plateau": (dims3, choice.plateau.reshape(shape[:3])),
            "accepted": (dims3, choice.accepted.reshape(shape[:3])),
            "eligible": (("M", "step"), choice.eligible.reshape(shape[:2])),
            "chosen_epsilon": ((), choice.epsilon),
        },
        coords={
            "M": cal_M,
            "step": cal_steps,
            "epsilon": np.logspace(-5, -4, n_eps),
            "gamma": np.logspace(2, 3, n_gamma),
            "chain": np.arange(n_chains),
            "draw": np.arange(n_draws),
        },
        attrs={**sgld, "chosen_gamma": 100.0, "rule_satisfied": int(choice.rule_satisfied),
               "choice_reason": choice.reason, "burnin_time": 0.5, "draw_time": 1.0},
    )
    return FigureInputs(
        outputs=outputs, baselines=baselines, pca=pca, llc=llc, llc_calibration=llc_calibration
    )


@pytest.fixture(scope="module")
def inputs() -> FigureInputs:
    return synthetic_inputs()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels from the PNG header (IHDR)."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


# --------------------------------------------------------------------------- figures


def test_names_and_stores_agree() -> None:
    assert set(FIGURE_NAMES) == PAPER_NAMES
    assert set(FIGURE_STORES) == set(FIGURE_NAMES)
    stores = {"outputs", "baselines", "pca", "llc", "llc_calibration"}
    for name in FIGURE_NAMES:
        assert FIGURE_STORES[name], name
        assert set(FIGURE_STORES[name]) <= stores
        assert set(FIGURE_OPTIONAL_STORES.get(name, ())) <= stores - set(FIGURE_STORES[name])


@pytest.mark.parametrize("name", sorted(PAPER_NAMES))
def test_every_figure_draws_and_saves(name: str, inputs: FigureInputs, tmp_path: Path) -> None:
    fig = draw_figure(name, inputs, {"smoothing_window": 3})
    assert isinstance(fig, Figure)
    assert fig.get_axes()
    width, height = fig.get_size_inches()
    assert 3.0 <= width <= 7.5 and height > 1.0
    pdf, png = tmp_path / "out" / f"{name}.pdf", tmp_path / "out" / f"{name}.png"
    save_figure(fig, pdf, png, dpi=160)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    px_w, px_h = png_size(png)
    assert px_w >= 150 * width - 1 and px_h >= 150 * height - 1
    assert sorted(p.name for p in pdf.parent.iterdir()) == sorted([pdf.name, png.name])  # no temporaries


def test_only_the_needed_stores_are_required(inputs: FigureInputs) -> None:
    for name in FIGURE_NAMES:
        needed = FIGURE_STORES[name]
        bare = FigureInputs(
            outputs=inputs.outputs if "outputs" in needed else {},
            **{s: getattr(inputs, s) if s in needed else None for s in ("baselines", "pca", "llc", "llc_calibration")},
        )
        assert isinstance(draw_figure(name, bare, {"raw": True}), Figure)


@pytest.mark.parametrize("name", ["fig1_ood_loss", "fig1_pca", "fig3", "figF_llc_traces", "fig_llc_over_time"])
def test_missing_store_names_figure_and_store(name: str, inputs: FigureInputs) -> None:
    for store in FIGURE_STORES[name]:
        kwargs = {s: getattr(inputs, s) for s in ("baselines", "pca", "llc", "llc_calibration")}
        outputs = inputs.outputs
        if store == "outputs":
            outputs = {}
        else:
            kwargs[store] = None
        with pytest.raises(MissingStoreError, match=rf"'{name}'.*'{store}'"):
            draw_figure(name, FigureInputs(outputs=outputs, **kwargs))


def test_missing_variable_names_it(inputs: FigureInputs) -> None:
    broken = FigureInputs(outputs=inputs.outputs, baselines=inputs.baselines.drop_vars("loss_ridge_ood"))
    with pytest.raises(KeyError, match="loss_ridge_ood.*baselines"):
        draw_figure("fig1_ood_loss", broken)


def test_unknown_figure_and_settings_are_refused(inputs: FigureInputs) -> None:
    with pytest.raises(ValueError, match="fig2"):
        draw_figure("fig2", inputs)
    with pytest.raises(ValueError, match="smoothing"):
        draw_figure("fig1_ood_loss", inputs, {"smoothing": 3})
    with pytest.raises(ValueError, match="odd"):
        FigureSettings(smoothing_window=4)


def test_raw_ignores_the_window() -> None:
    assert FigureSettings(smoothing_window=7, raw=True).window == 1
    assert FigureSettings(smoothing_window=7).window == 7
    assert FigureSettings(M_values=["1", "inf"]).M_values == (1.0, math.inf)


def test_edge_cases_still_draw() -> None:
    """One PC pair, a single finite M, an M without LLC estimates, no calibration."""
    small = synthetic_inputs((16.0, math.inf), n_pcs=2, llc_steps=1, n_chains=1, calibration_grid=(1, 3))
    llc = small.llc.copy()
    llc["llc_mean"] = llc["llc_mean"].where(llc["M"] != 16.0)
    small = FigureInputs(outputs=small.outputs, baselines=small.baselines, pca=small.pca, llc=llc)
    for name in FIGURE_NAMES:
        if "llc_calibration" in FIGURE_STORES[name]:
            continue  # needs the calibration store
        assert isinstance(draw_figure(name, small, {"llc_error": "sem"}), Figure)


# --------------------------------------------------------------------------- smooth


def smooth_reference(values: np.ndarray, window: int) -> np.ndarray:
    half = (window - 1) // 2
    n = len(values)
    out = np.empty(n)
    for i in range(n):
        h = min(half, i, n - 1 - i)
        out[i] = np.mean(values[i - h : i + h + 1])
    return out


@pytest.mark.parametrize("window", [1, 3, 5, 9, 31])
@pytest.mark.parametrize("n", [1, 2, 7, 20])
def test_smooth_matches_plain_loop(window: int, n: int) -> None:
    values = np.random.default_rng([window, n]).normal(size=n)
    out = smooth(values, window)
    assert out.shape == values.shape
    np.testing.assert_allclose(out, smooth_reference(values, window), rtol=1e-12, atol=1e-12)


def test_smooth_invariants() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(25, 3))
    np.testing.assert_array_equal(smooth(values, 1), values)
    assert smooth(values, 1) is not values
    np.testing.assert_allclose(smooth(np.full(11, 2.5), 5), 2.5)
    out = smooth(values, 5, axis=0)
    np.testing.assert_array_equal(out[[0, -1]], values[[0, -1]])  # endpoints kept
    for j in range(3):
        np.testing.assert_allclose(out[:, j], smooth_reference(values[:, j], 5))
    np.testing.assert_allclose(smooth(values.T, 5, axis=1), out.T)
    gap = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    smoothed = smooth(gap, 3)
    assert np.isnan(smoothed[2]) and smoothed[1] == pytest.approx(1.5) and smoothed[3] == pytest.approx(4.5)
    for bad in (0, 2, -1):
        with pytest.raises(ValueError, match="odd"):
            smooth(values, bad)


# --------------------------------------------------------------------------- colours


def luminance(color: tuple[float, ...]) -> float:
    r, g, b = to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_m_colors_order_and_infinity() -> None:
    Ms = [64.0, 1.0, math.inf, 2.0, 8.0, 512.0]
    colors = m_colors(Ms)
    assert set(colors) == set(Ms)
    finite = sorted(m for m in Ms if math.isfinite(m))
    lum = [luminance(colors[m]) for m in finite]
    assert all(a < b for a, b in zip(lum, lum[1:])), "colour must move monotonically with log M"
    assert all(np.linalg.norm(np.subtract(to_rgb(colors[math.inf]), to_rgb(colors[m]))) > 0.2 for m in finite)
    # log scale: equal ratios give the same colour whatever the units of the grid
    assert m_colors([1, 4, 16])[4.0] == m_colors([8, 32, 128])[32.0]
    assert colors == m_colors(reversed(Ms))
    assert m_colors([math.inf]) == {math.inf: colors[math.inf]}
    assert len(m_colors([3.0])) == 1
    with pytest.raises(ValueError, match="positive"):
        m_colors([0.0, 1.0])


def test_colours_follow_the_sweep_grid(inputs: FigureInputs) -> None:
    """A figure of a subset colours each M as the full grid does when given M_values."""
    subset = FigureInputs(llc=inputs.llc.sel(M=[8.0, 64.0]))
    grid = tuple(inputs.outputs)
    fig = draw_figure("fig3_llc_vs_M", subset, {"M_values": grid})
    drawn = {tuple(np.round(line.get_color(), 6)) for ax in fig.axes for line in ax.get_lines() if isinstance(line.get_color(), tuple)}
    expected = {tuple(np.round(m_colors(grid)[m], 6)) for m in (8.0, 64.0)}
    assert expected <= drawn


def test_M_axis_labels_every_M_of_a_short_grid() -> None:
    """A 5-run grid gets a tick per M (6 and 12 too); a paper-size grid gets powers of two."""
    from transient_ridge.plotting._sweep import MAxis

    fig = Figure()
    ax = fig.add_subplot()
    MAxis.from_values([4, 6, 8, 12, math.inf]).apply(ax)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["4", "6", "8", "12", "∞"]
    assert list(ax.get_xticks()[:4]) == [4.0, 6.0, 8.0, 12.0]

    paper = [1, 2, 4, 6, 8, 16, 24, 32, 48, 64, 96, 128, 182, 256, 362, 512, 1024, 2048, 4096, 8192, 16384, 32768]
    ticks, labels = MAxis.from_values([*paper, math.inf]).finite_ticks()
    assert all(math.log2(t).is_integer() for t in ticks) and 2 <= len(ticks) <= 8
    assert ticks[0] == 1.0 and labels[0] == "$2^{0}$"


# --------------------------------------------------------------------------- the Snakemake script


def load_script():
    spec = importlib.util.spec_from_file_location("plot_figure_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop("plot_figure_script", None)
    spec.loader.exec_module(module)
    return module


def test_script_main_reads_M_from_attrs(inputs: FigureInputs, tmp_path: Path) -> None:
    script = load_script()
    stores = {f"runs/{format_M(M)}/outputs.zarr": ds for M, ds in inputs.outputs.items()}
    # zarr attributes cannot hold ∞: the store writes it as the string "inf"
    stores = {p: ds.assign_attrs(M=str(ds.attrs["M"])) for p, ds in stores.items()}
    stores["baselines.zarr"] = inputs.baselines
    stores["pca.zarr"] = inputs.pca
    opened: list[str] = []

    def open_dataset(path: str) -> xr.Dataset:
        opened.append(str(path))
        return stores[str(path)]

    pdf, png = tmp_path / "fig1_ood_loss.pdf", tmp_path / "fig1_ood_loss.png"
    script.main(
        "fig1_ood_loss",
        outputs=[p for p in stores if p.startswith("runs/")],
        baselines="baselines.zarr",
        pca="pca.zarr",
        pdf=pdf,
        png=png,
        settings={"smoothing_window": 3},
        open_dataset=open_dataset,
    )
    assert pdf.exists() and png.exists()
    assert set(opened) == set(stores)
    with pytest.raises(MissingStoreError, match="'pca'"):
        script.main("fig1_pca", outputs=[], pdf=pdf, png=png, open_dataset=open_dataset)


def test_every_figure_has_a_report_caption() -> None:
    report = SCRIPT.parents[1] / "report"
    for name in FIGURE_NAMES:
        caption = report / f"{name}.rst"
        assert caption.is_file(), f"no caption {caption}"
        assert len(caption.read_text(encoding="utf-8").split()) > 30


def test_every_caption_renders_without_raw_markup() -> None:
    """The report renders captions with docutils: markup it cannot parse (an inline literal
    nested in bold, an unclosed bold) reaches the reader as raw backquotes and asterisks."""
    from docutils.core import publish_parts

    for caption in sorted((SCRIPT.parents[1] / "report").glob("*.rst")):
        html = publish_parts(caption.read_text(encoding="utf-8"), writer="html",
                             settings_overrides={"report_level": 5})["fragment"]
        raw = [token for token in ("``", "**") if token in html]
        assert not raw, f"{caption.name}: the rendered caption shows raw {raw}"


def test_each_caption_names_only_its_own_figure_among_its_group_rules_outputs() -> None:
    """A caption's Jinja may read ``snakemake.output.<name>_png`` of its group rule; any other key
    (``output.png`` of a one-figure rule) fails to render and the report shows raw markup."""
    import re

    for name in FIGURE_NAMES:
        caption = (SCRIPT.parents[1] / "report" / f"{name}.rst").read_text(encoding="utf-8")
        keys = set(re.findall(r"snakemake\.output\.(\w+)", caption))
        assert keys <= {f"{name}_png"}, (name, keys)


class FakeNamedList:
    """What the script uses of snakemake's Namedlist: attributes, ``get`` and indexing."""

    def __init__(self, *items: object, **named: object) -> None:
        self._items = list(items)
        self.__dict__.update(named)

    def __getitem__(self, index: int) -> object:
        return self._items[index]

    def get(self, key: str, default: object = None) -> object:
        return self.__dict__.get(key, default)


def _fake_job(inputs: FigureInputs, tmp_path: Path, names: list[str]) -> tuple[FakeNamedList, list[str]]:
    """A figure rule's job as the script sees it: the runs' and baselines' stores written as zarr,
    outputs ``<name>_pdf``/``<name>_png`` under ``tmp_path``; returns it and the runs' store paths."""
    from transient_ridge.store import write_dataset

    runs = []
    for M in (1.0, math.inf):
        path = tmp_path / f"M{format_M(M)}" / "outputs.zarr"
        write_dataset(inputs.outputs[M].drop_vars("pred_root"), path)
        runs.append(str(path))
    write_dataset(inputs.baselines, tmp_path / "baselines.zarr")
    smk = FakeNamedList()
    smk.input = FakeNamedList(outputs=runs, baselines=str(tmp_path / "baselines.zarr"))
    smk.output = FakeNamedList(**{f"{n}_{ext}": str(tmp_path / f"{n}.{ext}") for n in names for ext in ("pdf", "png")})
    smk.params = FakeNamedList(figures=names, settings={"smoothing_window": 3, "raw": False})
    smk.log = FakeNamedList(str(tmp_path / "fig.log"))
    smk.wildcards = FakeNamedList(exp="tiny")
    smk.config = {"experiments": {"tiny": TINY_BLOCK}}
    return smk, runs


def _run_script(script: types.ModuleType, smk: FakeNamedList) -> None:
    """Run the script's snakemake entry, then give back the root logger as it was."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        script._from_snakemake(smk)
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.captureWarnings(False)


def test_script_runs_under_snakemake_from_zarr(inputs: FigureInputs, tmp_path: Path) -> None:
    """The snakemake glue end to end: real zarr stores in, figures and a quiet log out."""
    script = load_script()
    smk, _ = _fake_job(inputs, tmp_path, ["fig1_ood_loss"])
    _run_script(script, smk)
    assert (tmp_path / "fig1_ood_loss.pdf").exists() and (tmp_path / "fig1_ood_loss.png").exists()
    text = (tmp_path / "fig.log").read_text()
    assert "wrote" in text and "M=inf" in text
    assert "fontTools" not in text


def test_a_group_rule_draws_each_figure_from_its_own_stores_opening_each_store_once(
    inputs: FigureInputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A figure group (one job): every member's files, each figure given only the stores it
    reads (fig1_distances takes no baselines), every store read once for the whole group."""
    from transient_ridge import store

    script = load_script()
    names = ["fig1_ood_loss", "fig1_distances"]
    smk, runs = _fake_job(inputs, tmp_path, names)
    opened: list[str] = []
    real_open = store.open_dataset

    def counting_open(path: str) -> object:
        opened.append(str(path))
        return real_open(path)

    monkeypatch.setattr(store, "open_dataset", counting_open)
    given: dict[str, dict] = {}
    real_main = script.main

    def recording_main(name: str, **kwargs: object) -> None:
        given[name] = kwargs
        real_main(name, **kwargs)

    monkeypatch.setattr(script, "main", recording_main)
    _run_script(script, smk)
    for n in names:
        assert (tmp_path / f"{n}.pdf").exists() and (tmp_path / f"{n}.png").exists(), n
    assert given["fig1_ood_loss"]["baselines"] is not None and given["fig1_distances"]["baselines"] is None
    assert sorted(opened) == sorted([*runs, str(tmp_path / "baselines.zarr")])  # each once


def test_figure_groups_cover_every_figure_once_and_need_no_store_beyond_their_members() -> None:
    grouped = [name for names in FIGURE_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(FIGURE_NAMES)
    stores = {group: {key for name in names for key in FIGURE_STORES[name]} for group, names in FIGURE_GROUPS.items()}
    assert stores["figures_runs"] <= {"outputs", "baselines"}  # drawn while the PCA and the LLC still run
    assert "pca" in stores["figures_pca"] and not stores["figures_pca"] & {"llc", "llc_calibration"}
    assert FIGURE_GROUPS["figures_llc_calibration"] == ("fig_llc_calibration",)


# --------------------------------------------------------------------------- LLC health marks


def _rings(fig: Figure) -> list:
    return [
        line for ax in fig.axes for line in ax.get_lines()
        if line.get_markerfacecolor() == "none" and line.get_marker() == "o" and len(line.get_xdata())
    ]  # fmt: skip


def test_llc_over_time_rings_estimates_whose_chains_spiked(inputs: FigureInputs) -> None:
    clean = draw_figure("fig_llc_over_time", inputs)
    assert not _rings(clean)
    assert not any("unreliable" in t.get_text() for legend in clean.legends for t in legend.get_texts())

    llc = inputs.llc.copy(deep=True)
    row = llc["llc_mean"].sel(M=8.0)
    first = int(row["step"].values[np.flatnonzero(np.isfinite(row.values))[0]])
    llc["trace_peak"].loc[{"M": 8.0, "step": first}] = 30.0  # 30x the start loss
    spiked = FigureInputs(outputs=inputs.outputs, baselines=inputs.baselines, pca=inputs.pca, llc=restatus(llc))
    fig = draw_figure("fig_llc_over_time", spiked)
    rings = _rings(fig)
    assert len(rings) == 1
    assert list(rings[0].get_xdata()) == [first]
    assert to_rgb(rings[0].get_markeredgecolor()) == to_rgb(m_colors(list(inputs.outputs))[8.0])
    assert any("unreliable" in t.get_text() for legend in fig.legends for t in legend.get_texts())


def _crosses(fig: Figure) -> list:
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "X" and len(line.get_xdata())]


def test_llc_over_time_marks_failed_estimates_and_leaves_them_off_the_line(inputs: FigureInputs) -> None:
    llc = inputs.llc.copy(deep=True)
    n_chains = llc.sizes["chain"]
    row = llc["llc_mean"].sel(M=8.0)
    first = int(row["step"].values[np.flatnonzero(np.isfinite(row.values))[0]])
    for name in ("llc_mean", "llc_std", "llc_sem", "loss_trace", "llc_chain", "trace_peak", "rhat", "half_z"):
        llc[name].loc[{"M": 8.0, "step": first}] = np.nan  # every chain diverged
    llc["failed_chains"].loc[{"M": 8.0, "step": first}] = n_chains
    fig = draw_figure("fig_llc_over_time",
                      FigureInputs(outputs=inputs.outputs, baselines=inputs.baselines, llc=restatus(llc)))
    crosses = _crosses(fig)
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [first]
    color = to_rgb(m_colors(list(inputs.outputs))[8.0])
    lines = [line for line in fig.axes[0].get_lines() if to_rgb(line.get_color()) == color and line.get_linestyle() == "-"]
    assert lines and all(first not in list(line.get_xdata()) for line in lines)
    assert any("failed" in t.get_text() for legend in fig.legends for t in legend.get_texts())


def test_llc_over_time_leaves_unreliable_estimates_off_the_line(inputs: FigureInputs) -> None:
    llc = inputs.llc.copy(deep=True)
    row = llc["llc_mean"].sel(M=8.0)
    first = int(row["step"].values[np.flatnonzero(np.isfinite(row.values))[0]])
    llc["failed_chains"].loc[{"M": 8.0, "step": first}] = 1  # one chain diverged, the others gave a number
    fig = draw_figure("fig_llc_over_time",
                      FigureInputs(outputs=inputs.outputs, baselines=inputs.baselines, llc=restatus(llc)))
    rings = _rings(fig)
    assert len(rings) == 1 and list(rings[0].get_xdata()) == [first]
    color = to_rgb(m_colors(list(inputs.outputs))[8.0])
    lines = [line for line in fig.axes[0].get_lines() if to_rgb(line.get_color()) == color and line.get_linestyle() == "-"]
    assert lines and all(first not in list(line.get_xdata()) for line in lines)


def test_llc_calibration_figure_shows_the_choice_and_every_point(inputs: FigureInputs) -> None:
    cal = inputs.llc_calibration
    fig = draw_figure("fig_llc_calibration", inputs)
    chosen = float(cal["chosen_epsilon"])
    n_panels = 2 * cal.sizes["M"] * cal.sizes["step"]
    vlines = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(vlines) == n_panels and all(list(line.get_xdata()) == [chosen, chosen] for line in vlines)
    # every (epsilon) point of every panel is drawn as exactly one status marker
    markers = sum(len(line.get_xdata()) for ax in fig.axes for line in ax.get_lines()
                  if line.get_marker() in ("o", "X", "D"))
    assert markers == n_panels * cal.sizes["epsilon"]
    assert f"chosen ε = {format_number(chosen)}" in fig.get_suptitle()


def _diamonds(fig: Figure) -> list:
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "D" and len(line.get_xdata())]


def test_estimates_that_have_not_converged_are_marked_off_the_line(inputs: FigureInputs) -> None:
    llc = inputs.llc.copy(deep=True)
    final = int(llc["step"].values[-1])
    llc["rhat"].loc[{"M": 8.0, "step": final}] = 1.5  # the chains disagree
    llc = restatus(llc)
    marked = FigureInputs(outputs=inputs.outputs, baselines=inputs.baselines, llc=llc)
    for name in ("fig_llc_over_time", "fig3_llc_vs_M"):
        fig = draw_figure(name, marked)
        diamonds = _diamonds(fig)
        assert len(diamonds) == 1, name
        assert any("not converged" in t.get_text() for legend in fig.legends for t in legend.get_texts()), name
    # fig3: the grey line joining the final estimates skips the unconverged one
    fig = draw_figure("fig3_llc_vs_M", marked)
    grey = [line for line in fig.axes[0].get_lines() if line.get_color() == "0.6"]
    assert grey and 8.0 not in list(grey[0].get_xdata())
    assert not _diamonds(draw_figure("fig_llc_over_time", inputs))


# --------------------------------------------------------------------------- seeds


def seeded_inputs(seeds: tuple[int, ...] = (1, 7)) -> FigureInputs:
    """The synthetic stores of several train seeds, stacked as the workflow stacks them."""
    from transient_ridge.seeds import runs_by_M

    per_seed = [synthetic_inputs(seed=i) for i in range(len(seeds))]
    runs = [ds.assign_attrs(seed=seed) for seed, one in zip(seeds, per_seed) for ds in one.outputs.values()]
    first = per_seed[0]
    trajectory = xr.concat([one.pca["trajectory"] for one in per_seed], dim=xr.DataArray(list(seeds), dims="seed"))
    llc = xr.concat([one.llc for one in per_seed], dim=xr.DataArray(list(seeds), dims="seed"))
    return FigureInputs(
        outputs=runs_by_M(runs, seed_axis=True),
        baselines=first.baselines,
        pca=first.pca.assign(trajectory=trajectory.transpose("M", "seed", "step", "pc")),
        llc=llc.transpose("M", "seed", ...),
        llc_calibration=first.llc_calibration,
    )


@pytest.fixture(scope="module")
def seeded() -> FigureInputs:
    return seeded_inputs()


def _bands(fig: Figure) -> int:
    from matplotlib.collections import PolyCollection

    return sum(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_every_figure_draws_with_seeds(name: str, seeded: FigureInputs, tmp_path: Path) -> None:
    fig = draw_figure(name, seeded, {"smoothing_window": 3})
    save_figure(fig, tmp_path / f"{name}.pdf", tmp_path / f"{name}.png", dpi=60)
    assert (tmp_path / f"{name}.png").stat().st_size > 0


@pytest.mark.parametrize(
    "name, bands",
    [("fig1_ood_loss", 4), ("fig1_distances", 8), ("figB_id_loss", 4), ("fig1", 12), ("fig_llc_over_time", 8)],
)
def test_time_series_draw_a_seed_median_with_a_min_max_band(name: str, bands: int, seeded: FigureInputs) -> None:
    fig = draw_figure(name, seeded)
    assert _bands(fig) == bands  # one band per M and panel (4 M; fig_llc_over_time: LLC and loss panels)
    assert any("median over 2 seeds" in text and "min–max" in text for text in _legend_texts(fig))
    # without seeds, no band and no such label
    plain = draw_figure(name, synthetic_inputs())
    assert _bands(plain) == 0 and not any("seeds" in text for text in _legend_texts(plain))


def test_the_band_spans_the_seeds_and_the_line_is_their_median(seeded: FigureInputs) -> None:
    from transient_ridge.seeds import seed_band

    fig = draw_figure("fig1_ood_loss", seeded)
    ax = fig.axes[0]
    M = 8.0
    values = seeded.outputs[M]["loss_ood"].transpose("seed", "step").values
    median, low, high = seed_band(values)
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == values.shape[1]]
    assert any(np.allclose(line.get_ydata(), median) for line in lines)
    band = next(c for c in ax.collections if np.allclose(c.get_paths()[0].vertices[:, 1].max(), high.max()))
    assert np.isclose(band.get_paths()[0].vertices[:, 1].min(), low.min())


def test_pca_figures_draw_each_seeds_trajectory(seeded: FigureInputs) -> None:
    n_steps = seeded.pca.sizes["step"]
    for name in ("fig1_pca", "figC_pca_pairs"):
        fig = draw_figure(name, seeded)
        ax = fig.axes[0]
        paths = [line for line in ax.get_lines() if len(line.get_xdata()) == n_steps]
        assert len(paths) == 4 * 2, name  # 4 M x 2 seeds
        assert "one trajectory per seed (2 seeds)" in _legend_texts(fig)


def test_script_stacks_the_seeds_of_each_M(seeded: FigureInputs, tmp_path: Path) -> None:
    from transient_ridge.seeds import select_seed
    from transient_ridge.store import write_dataset

    script = load_script()
    paths = []
    for M, ds in seeded.outputs.items():
        for seed in (1, 7):
            path = tmp_path / f"M{format_M(M)}" / f"s{seed}" / "outputs.zarr"
            write_dataset(select_seed(ds, seed).drop_vars("pred_root").assign_attrs(seed=seed), path)
            paths.append(str(path))
    write_dataset(seeded.baselines, tmp_path / "baselines.zarr")
    kwargs = dict(outputs=paths, baselines=tmp_path / "baselines.zarr", pdf=tmp_path / "f.pdf", png=tmp_path / "f.png")
    script.main("fig1_ood_loss", **kwargs, seed_axis=True)
    assert (tmp_path / "f.png").exists()
    with pytest.raises(ValueError, match=r"two outputs stores for M=1.0: .*s1.* and .*s7"):
        script.main("fig1_ood_loss", **kwargs)


# --------------------------------------------------------------------------- content
#
# What a reader sees equals what the stores hold. The synthetic stores are written to
# zarr and opened again (as a figure job opens them); every figure is drawn from them
# and each artist's data are compared with the store values it claims to show.
# Curves are smoothed in the figures: with window 1 (the raw variants under
# figures/raw/) a curve must equal the store values themselves, with window 3 it must
# equal ``transient_ridge.figures.smooth`` of them (``smooth`` is checked against a
# plain loop above). End points, ``t_crit`` stars and everything against M use the
# raw store values, as the captions say.

CONTENT_WINDOWS = (1, 3)
# Share of non-background pixels inside each axes' frame in a rendered PNG: an empty axes
# has 0, one holding only a dashed reference line about 1 %, the sparsest real panel of the
# synthetic stores (fig_llc_over_time's LLC, two estimates per run) 1.8 %.
INK_FLOOR = 0.005


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> FigureInputs:
    """The synthetic stores, written to zarr and opened again."""
    from transient_ridge.store import open_dataset, write_dataset

    root = tmp_path_factory.mktemp("stores")
    made = synthetic_inputs()
    outputs = {}
    for M, ds in made.outputs.items():
        path = root / "runs" / f"M{format_M(M)}" / "outputs.zarr"
        write_dataset(ds.assign_attrs(M=str(ds.attrs["M"])), path)
        outputs[M] = open_dataset(path)
    opened = {}
    for name in ("baselines", "pca", "llc", "llc_calibration"):
        with warnings.catch_warnings():
            # pca.zarr's predictor labels are fixed-width strings, which zarr 3 writes with a
            # warning that their on-disk form may change (the pca rule writes them the same way)
            warnings.filterwarnings("ignore", message=r"The data type \(FixedLengthUTF32")
            write_dataset(getattr(made, name), root / f"{name}.zarr")
        opened[name] = open_dataset(root / f"{name}.zarr")
    # the LLC checks below expect every recorded estimate to be sound (status code 0)
    status = opened["llc"]["status"].values
    assert set(np.unique(status[status >= 0])) == {0}
    return FigureInputs(outputs=outputs, **opened)


def data_axes(fig: Figure) -> list[Axes]:
    """The axes that show data: every axes but colour bars and switched-off grid cells."""
    return [ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>" and ax.axison]


def describe(ax: Axes) -> str:
    return f"axes (x {ax.get_xlabel()!r}, y {ax.get_ylabel()!r}, title {ax.get_title()!r})"


def data_lines(ax: Axes) -> list:
    """Lines in data coordinates with at least one finite point (not reference lines across the axes)."""
    lines = []
    for line in ax.get_lines():
        if line.get_transform() is not ax.transData:
            continue
        x, y = (np.asarray(v, dtype=np.float64) for v in line.get_data())
        if (np.isfinite(x) & np.isfinite(y)).any():
            lines.append(line)
    return lines


def reference_levels(ax: Axes, horizontal: bool = True) -> list[float]:
    """The y values of the horizontal reference lines (``axhline``), or the x of vertical ones."""
    transform = ax.get_yaxis_transform() if horizontal else ax.get_xaxis_transform()
    levels = []
    for line in ax.get_lines():
        if line.get_transform() != transform:
            continue
        values = np.asarray(line.get_ydata() if horizontal else line.get_xdata(), dtype=np.float64)
        if len(values) == 2 and values[0] == values[1]:
            levels.append(float(values[0]))
    return levels


def same_color(a: object, b: object) -> bool:
    return np.allclose(to_rgba(a), to_rgba(b))


def find_line(ax: Axes, x: object, y: object, what: str, color: object = None, marker: str | None = None):
    """The data line of ``ax`` through exactly the points ``(x, y)`` (same colour / marker when given)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    for line in data_lines(ax):
        lx, ly = (np.asarray(v, dtype=np.float64) for v in line.get_data())
        if lx.shape != x.shape or not np.allclose(lx, x, rtol=1e-9, equal_nan=True):
            continue
        if not np.allclose(ly, y, rtol=1e-9, atol=0.0, equal_nan=True):
            continue
        if color is not None and not same_color(line.get_color(), color):
            continue
        if marker is not None and line.get_marker() != marker:
            continue
        return line
    shown = [np.round(np.asarray(line.get_ydata(), dtype=float)[:3], 4).tolist() for line in data_lines(ax)]
    raise AssertionError(f"{describe(ax)}: no line draws {what} ({y[:3].round(4).tolist()}…); its lines start {shown}")


def errorbar_at(ax: Axes, x: float, y: float, err: float, what: str, color: object) -> None:
    """An error bar centred on ``(x, y)`` spanning ``y ± err``, in ``color``."""
    for container in ax.containers:
        data_line, _caps, bars = container.lines
        if data_line is None or not len(data_line.get_xdata()):
            continue
        lx, ly = (np.asarray(v, dtype=np.float64) for v in data_line.get_data())
        hit = np.flatnonzero(np.isclose(lx, x, rtol=1e-9) & np.isclose(ly, y, rtol=1e-9))
        if not hit.size or not same_color(data_line.get_color(), color):
            continue
        segment = np.asarray(bars[0].get_segments()[hit[0]])
        assert np.allclose(sorted(segment[:, 1]), [y - err, y + err], rtol=1e-9), f"{what}: bar {segment[:, 1]} ≠ {y} ± {err}"
        return
    raise AssertionError(f"{describe(ax)}: no error bar at {what} ({x}, {y})")


def axes_with(fig: Figure, **text: str) -> Axes:
    """The one data axes whose xlabel / ylabel / title starts with the given text."""
    getters = {"xlabel": Axes.get_xlabel, "ylabel": Axes.get_ylabel, "title": Axes.get_title}
    found = [ax for ax in data_axes(fig) if all(getters[k](ax).startswith(v) for k, v in text.items())]
    assert len(found) == 1, f"{len(found)} axes with {text}: {[describe(ax) for ax in data_axes(fig)]}"
    return found[0]


def colors_of(stores: FigureInputs) -> dict:
    return m_colors(stores.M_values())


def raw(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def t_crit_at(ds: xr.Dataset) -> int:
    """Index of the checkpoint nearest the run's ``t_crit`` attribute."""
    steps = raw(ds["step"].values)
    return int(np.argmin(np.abs(steps - float(ds.attrs["t_crit"]))))


# ---- one check per kind of panel; each returns the axes it checked


def check_over_training(ax: Axes, stores: FigureInputs, var: str, window: int, end_marker: bool = False) -> list[Axes]:
    """Per run: ``var`` over the steps (smoothed), its ``t_crit`` star (and the last point)."""
    colors = colors_of(stores)
    for M, ds in stores.outputs.items():
        steps = raw(ds["step"].values)
        curve = smooth(raw(ds[var].values), window)
        find_line(ax, steps, curve, f"{var} of M={format_M(M)}", colors[M])
        i = t_crit_at(ds)
        find_line(ax, [steps[i]], [curve[i]], f"t_crit of M={format_M(M)}", colors[M], marker="*")
        if end_marker:
            find_line(ax, [steps[-1]], [curve[-1]], f"end of M={format_M(M)}", colors[M], marker="o")
    series = [line for line in data_lines(ax) if len(line.get_xdata()) > 1]
    assert len(series) == len(stores.outputs), f"{describe(ax)}: {len(series)} curves for {len(stores.outputs)} runs"
    return [ax]


def check_ood_loss(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    ax = axes_with(fig, ylabel="OOD loss")
    ridge = raw(stores.baselines["loss_ridge_ood"].values).mean()
    assert np.isclose(reference_levels(ax), ridge, rtol=1e-9).any(), "the ridge OOD loss line"
    return check_over_training(ax, stores, "loss_ood", window)


def check_distances(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    return [
        *check_over_training(axes_with(fig, ylabel="dist. to dMMSE"), stores, "dist_dmmse", window, end_marker=True),
        *check_over_training(axes_with(fig, ylabel="dist. to ridge"), stores, "dist_ridge", window, end_marker=True),
    ]


def check_pca_pair(ax: Axes, stores: FigureInputs, pc_x: int, pc_y: int, window: int) -> list[Axes]:
    """Each run's trajectory in (pc_x, pc_y), start and end marked; each predictor's projection."""
    pca, colors = stores.pca, colors_of(stores)
    for M in pca["M"].values:
        xy = smooth(raw(pca["trajectory"].sel(M=M, pc=[pc_x, pc_y]).transpose("step", "pc").values), window, axis=0)
        name = f"PC{pc_x}–PC{pc_y} trajectory of M={format_M(M)}"
        find_line(ax, xy[:, 0], xy[:, 1], name, colors[float(M)])
        find_line(ax, [xy[0, 0]], [xy[0, 1]], f"start of the {name}", colors[float(M)], marker="o")
        find_line(ax, [xy[-1, 0]], [xy[-1, 1]], f"end of the {name}", colors[float(M)], marker="o")
    for label in pca["predictor"].values:
        x, y = raw(pca["predictor_projection"].sel(predictor=label, pc=[pc_x, pc_y]).values)
        marker = "s" if str(label) == "ridge" else "D"
        find_line(ax, [x], [y], f"the projection of {label}", marker=marker)
    return [ax]


def check_pc_labels(ax: Axes, stores: FigureInputs, pc_x: int | None, pc_y: int | None) -> None:
    evr = stores.pca["explained_variance_ratio"]
    for pc, label in ((pc_x, ax.get_xlabel()), (pc_y, ax.get_ylabel())):
        if pc is not None:
            assert label == f"PC{pc} ({100 * float(evr.sel(pc=pc)):.1f}% var.)", label


def check_pca(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    ax = axes_with(fig, xlabel="PC1 (")
    check_pc_labels(ax, stores, 1, 2)
    return check_pca_pair(ax, stores, 1, 2, window)


def inf_position(ax: Axes) -> float:
    """Where the M axis puts M = ∞: the x of its "∞" tick."""
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "∞" in labels, labels
    return float(ax.get_xticks()[labels.index("∞")])


def check_loss_vs_M(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """Final ID loss against M: ridge and dMMSE_M from baselines.zarr, each run's last checkpoint."""
    ax = axes_with(fig, ylabel="final in-distribution loss")
    colors, at_inf = colors_of(stores), inf_position(ax)
    assert at_inf > max(m for m in stores.outputs if math.isfinite(m))
    base_M = raw(stores.baselines["M"].values)
    finite = np.isfinite(base_M)
    for var, marker in (("loss_ridge_id", "s"), ("loss_dmmse_id", "D")):
        values = raw(stores.baselines[var].mean("token").values)
        find_line(ax, base_M[finite], values[finite], f"{var} against M", marker=marker)
        find_line(ax, [at_inf], values[~finite], f"{var} at M = ∞", marker=marker)
    for M, ds in stores.outputs.items():
        x = at_inf if math.isinf(M) else M
        find_line(ax, [x], [float(ds["loss_id"].values[-1])], f"final loss of M={format_M(M)}", colors[M], marker="o")
    return [ax]


def final_llc_records(llc: xr.Dataset) -> dict[float, tuple[int, float, float]]:
    """``M → (step, llc_mean, llc_std)`` at each run's last record (``failed_chains ≥ 0``, docs/stores.md)."""
    final = {}
    for M in llc["M"].values:
        row = llc.sel(M=M)
        recorded = np.flatnonzero(row["failed_chains"].values >= 0)
        j = int(recorded[-1])
        final[float(M)] = (int(row["step"].values[j]), float(row["llc_mean"].values[j]), float(row["llc_std"].values[j]))
    return final


def check_llc_vs_M(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """Each run's final LLC estimate ± s.d. across chains; M = ∞'s as a dashed line."""
    ax = axes_with(fig, ylabel="LLC $\\hat\\lambda$ (final")
    colors, at_inf = colors_of(stores), inf_position(ax)
    final = final_llc_records(stores.llc)
    for M, (_step, mean, std) in final.items():
        errorbar_at(ax, at_inf if math.isinf(M) else M, mean, std, f"final LLC of M={format_M(M)}", colors[M])
    assert np.isclose(reference_levels(ax), final[math.inf][1], rtol=1e-9).any(), "the M = ∞ LLC line"
    finite = sorted(m for m in final if math.isfinite(m))
    find_line(ax, finite, [final[m][1] for m in finite], "the line through the finite M's final LLC")
    return [ax]


def check_id_loss_panels(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """One panel per M: its ID loss over training, dMMSE_M's and ridge's ID loss as lines."""
    checked, colors = [], colors_of(stores)
    for M, ds in stores.outputs.items():
        ax = axes_with(fig, title=f"$M$ = {format_M(M)}")
        steps, curve = raw(ds["step"].values), smooth(raw(ds["loss_id"].values), window)
        find_line(ax, steps, curve, f"ID loss of M={format_M(M)}", colors[M])
        levels = reference_levels(ax)
        for var in ("loss_dmmse_id", "loss_ridge_id"):
            level = float(stores.baselines[var].sel(M=M).mean("token"))
            assert np.isclose(levels, level, rtol=1e-9).any(), f"{var} of M={format_M(M)}: {level} not in {levels}"
        checked.append(ax)
    return checked


def check_pca_pairs(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """The lower triangle of PC pairs: panel (row r, column c) shows PC c+1 against PC r+2."""
    shown = [int(pc) for pc in stores.pca["pc"].values][:FigureSettings().max_pcs]
    checked = []
    for ax in data_axes(fig):
        spec = ax.get_subplotspec()
        row, col = spec.rowspan.start, spec.colspan.start
        pc_x, pc_y = shown[col], shown[row + 1]
        check_pc_labels(ax, stores, pc_x if ax.get_xlabel() else None, pc_y if ax.get_ylabel() else None)
        checked += check_pca_pair(ax, stores, pc_x, pc_y, window)
    n = len(shown) - 1
    assert len(checked) == n * (n + 1) // 2
    return checked


def check_token_loadings(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """One bar chart per PC: the bar over token k is that PC's loading share on k."""
    loadings, checked = stores.pca["token_loadings"], []
    for pc in stores.pca["pc"].values[: FigureSettings().max_pcs]:
        ax = axes_with(fig, title=f"PC{pc} (")
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        centres = [bar.get_x() + bar.get_width() / 2 for bar in bars]
        assert np.allclose(centres, raw(loadings["token"].values))
        assert np.allclose([bar.get_height() for bar in bars], raw(loadings.sel(pc=pc).values), rtol=1e-9), f"PC{pc}"
        assert np.isclose(reference_levels(ax), 1 / loadings.sizes["token"]).any(), "the uniform share"
        checked.append(ax)
    return checked


def check_traces(ax: Axes, x: np.ndarray, traces: np.ndarray, init: float, what: str) -> None:
    """One line per chain: ``traces (chain, draw)`` against ``x``; the start loss as a dotted line."""
    for chain, trace in enumerate(traces):
        find_line(ax, x, trace, f"{what}, chain {chain}")
    assert np.isclose(reference_levels(ax), init, rtol=1e-9).any(), f"{what}: the start loss {init}"


def check_llc_traces(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """Final estimates' SGLD loss traces per M; the calibration grid's traces per (ε, γ)."""
    llc, checked = stores.llc, []
    for M, (step, mean, _std) in final_llc_records(llc).items():
        ax = axes_with(fig, title=f"$M$ = {format_M(M)}, step {step}\nλ̂ = {mean:.3g}")
        at = llc.sel(M=M, step=step)
        check_traces(ax, raw(llc["draw"].values), raw(at["loss_trace"].values), float(at["init_loss"]), f"M={format_M(M)}")
        checked.append(ax)
    cal = stores.llc_calibration
    final_step = cal["step"].values[-1]
    for k, M in enumerate(cal["M"].values):
        grid = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start): ax
                for ax in data_axes(fig) if ax.get_figure(root=False) is fig.subfigs[1 + k]}
        for r, eps in enumerate(cal["epsilon"].values):
            for c, gamma in enumerate(cal["gamma"].values):
                at = cal.sel(M=M, step=final_step, epsilon=eps, gamma=gamma)
                time = np.arange(cal.sizes["draw"]) * float(eps) * float(gamma)
                check_traces(grid[r, c], time, raw(at["loss_trace"].values), float(at["init_loss"]), f"ε={eps}, γ={gamma}")
                checked.append(grid[r, c])
    return checked


def check_llc_over_time(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """Top: every recorded LLC estimate ± s.d. per M at its step; bottom: the ID loss over training."""
    llc, colors = stores.llc, colors_of(stores)
    ax = axes_with(fig, ylabel="LLC $\\hat\\lambda$")
    for M in llc["M"].values:
        row = llc.sel(M=M)
        recorded = row["failed_chains"].values >= 0
        steps, means, stds = raw(row["step"].values)[recorded], raw(row["llc_mean"].values)[recorded], raw(row["llc_std"].values)[recorded]
        find_line(ax, steps, means, f"LLC over training of M={format_M(float(M))}", colors[float(M)])
        for step, mean, std in zip(steps, means, stds):
            errorbar_at(ax, step, mean, std, f"LLC of M={format_M(float(M))} at step {step:g}", colors[float(M)])
    return [ax, *check_over_training(axes_with(fig, ylabel="in-distribution loss"), stores, "loss_id", window)]


def check_llc_calibration(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """Per calibration checkpoint: the estimate and the trace peak against ε at the chosen γ."""
    cal = stores.llc_calibration
    at = cal.sel(gamma=float(cal.attrs["chosen_gamma"]))
    eps = raw(cal["epsilon"].values)
    colors, checked = colors_of(stores), []
    for M in at["M"].values:
        for step in at["step"].values:
            one = at.sel(M=M, step=step)
            ax_llc = axes_with(fig, title=f"$M$ = {format_M(float(M))}, step {int(step)}")
            spec = ax_llc.get_subplotspec()
            ax_peak = next(ax for ax in data_axes(fig)
                           if ax.get_subplotspec().rowspan.start == spec.rowspan.start + 1
                           and ax.get_subplotspec().colspan.start == spec.colspan.start)
            find_line(ax_llc, eps, raw(one["llc_mean"].values), f"LLC against ε at M={M}, step {step}", colors[float(M)])
            find_line(ax_peak, eps, raw(one["trace_peak"].values), f"trace peak against ε at M={M}, step {step}", colors[float(M)])
            for ax in (ax_llc, ax_peak):
                assert np.isclose(reference_levels(ax, horizontal=False), float(cal["chosen_epsilon"])).any(), "chosen ε"
            checked += [ax_llc, ax_peak]
    return checked


def check_predictor_fit(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    """Per M: OOD distances to ridge, dMMSE_M, the nearest ridge_λ and GD-k (smoothed) over the fitted λ and kη
    (raw) below; σ², the grid bounds and the t_crit line."""
    from transient_ridge.plotting._style import GD_COLOR, RIDGE_LAMBDA_COLOR

    checked = []
    for M, ds in stores.outputs.items():
        ax_dist = axes_with(fig, title=f"$M$ = {format_M(M)}")
        spec = ax_dist.get_subplotspec()
        below = [ax for ax in data_axes(fig) if ax.get_subplotspec().rowspan.start == spec.rowspan.start + 1
                 and ax.get_subplotspec().colspan.start == spec.colspan.start]
        assert len(below) == 1, f"M={format_M(M)}: {len(below)} fitted-value panels under its distances"
        ax_fit = below[0]
        ood, steps = ds.sel(probe="ood"), raw(ds["step"].values)
        for family, color in (("ridge", "black"), ("dmmse", "0.55"), ("ridge_lambda", RIDGE_LAMBDA_COLOR),
                              ("gd_k", GD_COLOR)):
            curve = smooth(raw(ood["family_dist"].sel(family=family).values), window)
            find_line(ax_dist, steps, curve, f"OOD distance to {family} of M={format_M(M)}", color)
        find_line(ax_fit, steps, raw(ood["fit_ridge_penalty"].values), f"fitted λ of M={format_M(M)}", RIDGE_LAMBDA_COLOR)
        gd_time = raw((ood["fit_gd_steps"] * ood["fit_gd_step_size"]).values)
        find_line(ax_fit, steps, gd_time, f"fitted kη of M={format_M(M)}", GD_COLOR)
        levels = reference_levels(ax_fit)
        penalties, eta, k = (raw(ds[c].values) for c in ("ridge_penalty", "gd_step_size", "gd_steps"))
        for level, what in ((float(ds["fit_ridge_penalty"].attrs["noise_variance"]), "σ²"),
                            (penalties.min(), "the smallest λ"), (penalties.max(), "the largest λ"),
                            (eta.min() * k.min(), "the smallest kη"), (eta.max() * k.max(), "the largest kη")):
            assert np.isclose(levels, level, rtol=1e-9).any(), f"M={format_M(M)}: {what} ({level}) not in {levels}"
        for ax in (ax_dist, ax_fit):
            assert np.isclose(reference_levels(ax, horizontal=False), steps[t_crit_at(ds)]).any(), "the t_crit line"
        checked += [ax_dist, ax_fit]
    return checked


def check_fig1(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    return [*check_ood_loss(fig, stores, window), *check_distances(fig, stores, window), *check_pca(fig, stores, window)]


def check_fig3(fig: Figure, stores: FigureInputs, window: int) -> list[Axes]:
    return [*check_loss_vs_M(fig, stores, window), *check_llc_vs_M(fig, stores, window)]


CONTENT_CHECKS = {
    "fig1_ood_loss": check_ood_loss,
    "fig1_distances": check_distances,
    "fig1_pca": check_pca,
    "fig3_loss_vs_M": check_loss_vs_M,
    "fig3_llc_vs_M": check_llc_vs_M,
    "figB_id_loss": check_id_loss_panels,
    "figC_pca_pairs": check_pca_pairs,
    "figE_token_loadings": check_token_loadings,
    "figF_llc_traces": check_llc_traces,
    "fig_llc_over_time": check_llc_over_time,
    "fig_llc_calibration": check_llc_calibration,
    "fig_predictor_fit": check_predictor_fit,
    "fig1": check_fig1,
    "fig3": check_fig3,
}


def check_content(name: str, fig: Figure, stores: FigureInputs, window: int) -> None:
    """Every data axes of ``fig`` shows what its check says, and no axes goes unchecked."""
    assert name in CONTENT_CHECKS, (
        f"figure {name!r} has no content check: add one to CONTENT_CHECKS in tests/test_figures.py "
        f"that compares each of its artists with the store values it shows"
    )
    checked = CONTENT_CHECKS[name](fig, stores, window)
    unchecked = [describe(ax) for ax in data_axes(fig) if not any(ax is c for c in checked)]
    assert not unchecked, f"{name}: axes no check looked at: {unchecked}"


@pytest.mark.parametrize("window", CONTENT_WINDOWS)
@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_every_figure_shows_the_store_values(name: str, window: int, stores: FigureInputs) -> None:
    check_content(name, draw_figure(name, stores, {"smoothing_window": window}), stores, window)


def axes_problems(fig: Figure) -> list[str]:
    """Data axes that draw nothing or carry no label (own, a shared axis's, or the (sub)figure's)."""
    problems = []
    for ax in data_axes(fig):
        drawn = data_lines(ax) or ax.patches or ax.images or any(len(c.get_paths()) for c in ax.collections)
        if not drawn:
            problems.append(f"{describe(ax)} draws no data")
        texts = [ax.get_xlabel(), ax.get_ylabel(), *(ax.get_title(loc=loc) for loc in ("left", "center", "right"))]
        for sibling in (*ax.get_shared_x_axes().get_siblings(ax), *ax.get_shared_y_axes().get_siblings(ax)):
            texts += [sibling.get_xlabel(), sibling.get_ylabel()]
        parent = ax.get_figure(root=False)
        for attr in ("_supxlabel", "_supylabel", "_suptitle"):
            if (text := getattr(parent, attr, None)) is not None:
                texts.append(text.get_text())
        if not any(t.strip() for t in texts):
            problems.append(f"{describe(ax)} has no label")
    return problems


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_every_axes_has_drawn_data_and_a_label(name: str, stores: FigureInputs) -> None:
    fig = draw_figure(name, stores, {"smoothing_window": 3})
    assert data_axes(fig)
    assert not axes_problems(fig)


def ink_per_axes(fig: Figure, png: Path) -> dict[str, float]:
    """Share of non-background (not white) pixels of the rendered PNG inside each data axes' frame."""
    from matplotlib.image import imread

    image = imread(png)[..., :3]
    height, width = image.shape[:2]
    ink = {}
    for ax in data_axes(fig):
        box = ax.get_position()  # figure fraction, as laid out when the PNG was drawn
        inset = 3  # pixels: leave out the spines and ticks
        rows = slice(int((1 - box.y1) * height) + inset, int((1 - box.y0) * height) - inset)
        cols = slice(int(box.x0 * width) + inset, int(box.x1 * width) - inset)
        inside = image[rows, cols]
        ink[describe(ax)] = float((np.abs(inside - 1.0).max(axis=-1) > 0.02).mean()) if inside.size else 0.0
    return ink


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_every_rendered_axes_has_ink(name: str, stores: FigureInputs, tmp_path: Path) -> None:
    """The PNG as saved: inside every data axes at least INK_FLOOR of the pixels are not background."""
    fig = draw_figure(name, stores, {"smoothing_window": 3})
    save_figure(fig, tmp_path / f"{name}.pdf", tmp_path / f"{name}.png", dpi=100)
    ink = ink_per_axes(fig, tmp_path / f"{name}.png")
    assert ink and min(ink.values()) >= INK_FLOOR, ink


def test_the_checks_fail_on_an_emptied_axes_a_wrong_store_and_a_blank_panel(stores: FigureInputs, tmp_path: Path) -> None:
    """The content, label and ink checks are not true by construction."""
    fig = draw_figure("fig1_ood_loss", stores, {"smoothing_window": 3})
    for line in data_lines(axes_with(fig, ylabel="OOD loss")):
        line.remove()  # the axes keeps its labels and the ridge line, but no run
    with pytest.raises(AssertionError, match="no line draws loss_ood"):
        check_content("fig1_ood_loss", fig, stores, 3)

    shifted = FigureInputs(outputs={M: ds.assign(loss_ood=ds["loss_ood"] * 1.01) for M, ds in stores.outputs.items()},
                           baselines=stores.baselines)
    with pytest.raises(AssertionError, match="no line draws loss_ood"):
        check_content("fig1_ood_loss", draw_figure("fig1_ood_loss", stores, {"smoothing_window": 3}), shifted, 3)
    with pytest.raises(AssertionError, match="no line draws loss_ood"):  # smoothed, compared as raw
        check_content("fig1_ood_loss", draw_figure("fig1_ood_loss", stores, {"smoothing_window": 3}), stores, 1)

    fig = draw_figure("fig1_ood_loss", stores)
    blank = fig.add_subplot(2, 2, 4)  # an extra axes with nothing on it
    with pytest.raises(AssertionError, match="axes no check looked at"):
        check_content("fig1_ood_loss", fig, stores, 1)
    assert any("draws no data" in p for p in axes_problems(fig)) and any("no label" in p for p in axes_problems(fig))
    blank.set_xlabel("labelled")
    assert [p for p in axes_problems(fig)] == [f"{describe(blank)} draws no data"]
    save_figure(fig, tmp_path / "blank.pdf", tmp_path / "blank.png", dpi=100)
    ink = ink_per_axes(fig, tmp_path / "blank.png")
    assert ink[describe(blank)] < INK_FLOOR <= ink[describe(axes_with(fig, ylabel="OOD loss"))]
    with pytest.raises(AssertionError, match="no content check"):
        check_content("fig9_new", fig, stores, 1)
