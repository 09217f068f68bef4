"""fig_predictor_fit and the ridge_λ path of the PCA figures draw the store values themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from family_stores import NOISE_VARIANCE, PENALTIES
from test_figures import seeded_inputs, synthetic_inputs
from transient_ridge.figures import FigureInputs, draw_figure

FAMILY_COLORS = {"ridge": "black", "ridge_lambda": "#2ca02c", "gd_k": "#17a0b0"}


def _lines(ax):
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 2]


def _has_line(ax, x, y) -> bool:
    return any(
        np.array_equal(np.asarray(line.get_xdata(), dtype=float), np.asarray(x, dtype=float))
        and np.allclose(np.asarray(line.get_ydata(), dtype=float), y, rtol=0, atol=0, equal_nan=True)
        for line in _lines(ax)
    )


def test_each_M_draws_its_distances_and_fitted_values_exactly():
    inputs = synthetic_inputs()
    fig = draw_figure("fig_predictor_fit", inputs, {"smoothing_window": 1})
    axes = fig.axes
    assert len(axes) == 2 * len(inputs.outputs)
    for index, (M, ds) in enumerate(inputs.outputs.items()):
        ax_dist, ax_fit = axes[2 * index], axes[2 * index + 1]
        steps = ds["step"].values
        ood = ds.sel(probe="ood")
        for family in ("ridge", "dmmse", "ridge_lambda", "gd_k"):
            assert _has_line(ax_dist, steps, ood["family_dist"].sel(family=family).values), (M, family)
        assert _has_line(ax_fit, steps, ood["fit_ridge_penalty"].values)
        assert _has_line(ax_fit, steps, (ood["fit_gd_steps"] * ood["fit_gd_step_size"]).values)
        assert NOISE_VARIANCE in [line.get_ydata()[0] for line in ax_fit.get_lines() if len(line.get_ydata()) == 2]
        assert "∞" in ax_dist.get_title() if math.isinf(M) else str(int(M)) in ax_dist.get_title()


def test_seeds_get_a_median_line_over_a_band():
    seeded = seeded_inputs()
    fig = draw_figure("fig_predictor_fit", seeded, {"smoothing_window": 1})
    M = 8.0
    ax_dist = fig.axes[2 * list(seeded.outputs).index(M)]
    values = seeded.outputs[M]["family_dist"].sel(probe="ood", family="ridge_lambda").transpose("seed", "step").values
    assert _has_line(ax_dist, seeded.outputs[M]["step"].values, np.median(values, axis=0))
    assert len(ax_dist.collections) == 4  # one band per distance line
    assert any("median over 2 seeds" in t.get_text() for legend in fig.legends for t in legend.get_texts())


def test_without_the_fit_the_figure_names_what_is_missing():
    inputs = synthetic_inputs()
    old = {M: ds.drop_vars("family_dist") for M, ds in inputs.outputs.items()}
    with pytest.raises(KeyError, match="fig_predictor_fit.*family_dist"):
        draw_figure("fig_predictor_fit", FigureInputs(outputs=old))


def _with_ridge_path(pca: xr.Dataset) -> xr.Dataset:
    rng = np.random.default_rng(5)
    path = rng.normal(size=(len(PENALTIES), pca.sizes["pc"]))
    return pca.assign_coords(ridge_penalty=PENALTIES).assign(
        ridge_path_projection=(("ridge_penalty", "pc"), path)
    ).assign_attrs(noise_variance=NOISE_VARIANCE)


@pytest.mark.parametrize("name", ["fig1_pca", "figC_pca_pairs", "fig1"])
def test_pca_figures_draw_the_ridge_path_from_sigma2_up(name):
    inputs = synthetic_inputs()
    pca = _with_ridge_path(inputs.pca)
    fig = draw_figure(name, FigureInputs(outputs=inputs.outputs, baselines=inputs.baselines, pca=pca))
    kept = PENALTIES >= NOISE_VARIANCE
    expected = pca["ridge_path_projection"].values[kept][:, :2]
    ax = fig.axes[0] if name == "figC_pca_pairs" else next(ax for ax in fig.axes if ax.get_xlabel().startswith("PC1"))
    assert any(
        np.array_equal(line.get_xdata(), expected[:, 0]) and np.array_equal(line.get_ydata(), expected[:, 1])
        for line in ax.get_lines()
    )
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any(text.startswith("ridge$_\\lambda$") and "100" in text for text in texts)
    plain = draw_figure(name, inputs)
    assert not any(t.get_text().startswith("ridge$_\\lambda$") for legend in plain.legends for t in legend.get_texts())
