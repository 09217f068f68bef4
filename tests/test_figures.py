"""Figures: every name renders from synthetic stores in the docs/stores.md layout.

The synthetic stores mimic the paper's story (small M go to dMMSE_M, middle M
pass near ridge first, large M stay at ridge) only roughly: these tests check
that figures draw and save, and the invariants of ``smooth`` and ``m_colors``,
not the science.
"""

from __future__ import annotations

import importlib.util
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from conftest import TINY_BLOCK
from family_stores import with_family_fit
from llc_stores import restatus
from transient_ridge.llc import choose_epsilon, estimate_status, trace_peak_ratio
from transient_ridge.plotting._style import format_number
from transient_ridge.figures import (
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


class FakeNamedList:
    """What the script uses of snakemake's Namedlist: attributes, ``get`` and indexing."""

    def __init__(self, *items: object, **named: object) -> None:
        self._items = list(items)
        self.__dict__.update(named)

    def __getitem__(self, index: int) -> object:
        return self._items[index]

    def get(self, key: str, default: object = None) -> object:
        return self.__dict__.get(key, default)


def test_script_runs_under_snakemake_from_zarr(inputs: FigureInputs, tmp_path: Path) -> None:
    """The snakemake glue end to end: real zarr stores in, figures and a quiet log out."""
    import logging

    from transient_ridge.store import write_dataset

    script = load_script()
    runs = []
    for M in (1.0, math.inf):
        path = tmp_path / f"M{format_M(M)}" / "outputs.zarr"
        write_dataset(inputs.outputs[M].drop_vars("pred_root"), path)
        runs.append(str(path))
    write_dataset(inputs.baselines, tmp_path / "baselines.zarr")
    log_file = tmp_path / "fig.log"
    smk = FakeNamedList()
    smk.input = FakeNamedList(outputs=runs, baselines=str(tmp_path / "baselines.zarr"))
    smk.output = FakeNamedList(pdf=str(tmp_path / "f.pdf"), png=str(tmp_path / "f.png"))
    smk.params = FakeNamedList(figure="fig1_ood_loss", settings={"smoothing_window": 3, "raw": False})
    smk.log = FakeNamedList(str(log_file))
    smk.wildcards = FakeNamedList(exp="tiny")
    smk.config = {"experiments": {"tiny": TINY_BLOCK}}
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
    assert (tmp_path / "f.pdf").exists() and (tmp_path / "f.png").exists()
    text = log_file.read_text()
    assert "wrote" in text and "M=inf" in text
    assert "fontTools" not in text


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
