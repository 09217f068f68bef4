"""The family findings on synthetic outputs stores: the nearest family, the margin and the seed-spread verdict."""

import json
import math

import numpy as np
import pytest
import xarray as xr

from transient_ridge.families import FAMILIES, PROBES
from transient_ridge.family_findings import family_findings
from transient_ridge.seeds import runs_by_M

STEPS = np.array([0, 10, 20, 30])
PENALTIES = np.array([0.01, 0.1, 1.0, 10.0])
STEP_SIZES = np.array([0.1, 0.5])
GD_STEPS = np.array([1, 4])


def run(M, *, ridge=1.0, ridge_lambda=0.6, gd_k=0.7, lam=1.0, seed=None, t_crit=20, loss_ood=None):
    """An outputs dataset whose distances are constant over steps and probe sets except as given."""
    dist = np.empty((len(STEPS), len(PROBES), len(FAMILIES)))
    for i, value in enumerate((ridge, 2.0, ridge_lambda, gd_k, 50.0)):
        dist[..., i] = value
    attrs = {"M": M, "t_crit": t_crit}
    if seed is not None:
        attrs["seed"] = seed
    shape = (len(STEPS), len(PROBES))
    return xr.Dataset(
        {
            "family_dist": (("step", "probe", "family"), dist),
            "fit_ridge_penalty": (("step", "probe"), np.full(shape, lam)),
            "fit_gd_step_size": (("step", "probe"), np.full(shape, 0.1)),
            "fit_gd_steps": (("step", "probe"), np.full(shape, 4.0)),
            "loss_ood": ("step", np.array([3.0, 2.0, 1.0, 1.5]) if loss_ood is None else loss_ood),
        },
        coords={
            "step": STEPS, "probe": list(PROBES), "family": list(FAMILIES), "ridge_penalty": PENALTIES,
            "gd_step_size": STEP_SIZES, "gd_steps": GD_STEPS,
        },
        attrs=attrs,
    )  # fmt: skip


def test_one_seed_names_the_nearest_family_and_leaves_the_spread_unknown():
    findings = family_findings({16.0: run(16.0, ridge_lambda=0.6, gd_k=0.5), math.inf: run(math.inf)})
    row = next(r for r in findings.table if r.M == 16.0 and r.point == "t_crit" and r.probe == "ood")
    assert row.nearest == ["gd_k"] and row.steps == [20]
    assert row.margin[0] == pytest.approx(0.5) and row.relative_margin[0] == pytest.approx(0.5)
    assert row.seed_spread is None and row.beyond_seed_spread is None
    assert any("unknown (one seed)" in line for line in findings.markdown)
    assert [(r.point, r.probe) for r in findings.table if r.M == 16.0] == [
        ("t_crit", "ood"), ("end", "ood"), ("t_crit", "id"), ("end", "id")
    ]
    assert next(r for r in findings.table if r.point == "end").steps == [30]
    json.dumps(findings.report, allow_nan=False)


def seeded(margins_by_seed, ridge_by_seed):
    runs = [
        run(16.0, ridge=ridge, ridge_lambda=ridge - margin, gd_k=ridge, seed=seed, t_crit=10 * (1 + seed % 3))
        for seed, (margin, ridge) in enumerate(zip(margins_by_seed, ridge_by_seed), start=1)
    ]
    return runs_by_M(runs, seed_axis=True)


def test_nearer_than_ridge_beyond_the_seed_spread_holds_when_every_margin_exceeds_it():
    findings = family_findings(seeded([0.30, 0.25, 0.40], [1.00, 0.95, 1.10]))  # spread 0.15
    row = findings.table[0]
    assert row.seeds == [1, 2, 3] and row.steps == [20, 30, 10]  # each seed at its own t_crit
    assert row.seed_spread == pytest.approx(0.15)
    assert row.beyond_seed_spread is True
    assert row.nearest == ["ridge_lambda"] * 3
    assert row.margin == pytest.approx((0.30, 0.25, 0.40))


def test_nearer_than_ridge_beyond_the_seed_spread_fails_when_one_margin_is_within_it():
    findings = family_findings(seeded([0.30, 0.10, 0.40], [1.00, 0.95, 1.10]))  # 0.10 < spread 0.15
    assert findings.table[0].beyond_seed_spread is False
    assert any("| no |" in line for line in findings.markdown)


def test_a_fitted_value_on_the_grid_boundary_is_flagged():
    findings = family_findings({4.0: run(4.0, lam=10.0)})
    assert all(p.ridge_penalty_at_edge for p in findings.points)
    assert all(p.gd_at_edge for p in findings.points)  # k = 4 and η = 0.1 are ends of their grids
    assert any("(grid edge)" in line for line in findings.markdown)
    inside = family_findings({4.0: run(4.0, lam=0.1)})
    assert not any(p.ridge_penalty_at_edge for p in inside.points)


def test_stores_without_the_fit_give_a_section_that_says_so():
    old = run(4.0).drop_vars(["family_dist"])
    findings = family_findings({4.0: old})
    assert findings.table == [] and "not_measured" in findings.report
    assert any("evaluate rule" in line for line in findings.markdown)


def test_nearest_overall_counts_dmmse_too():
    near_dmmse = run(1.0, ridge=1.0, ridge_lambda=0.5, gd_k=0.6)
    near_dmmse["family_dist"].loc[{"family": "dmmse"}] = 0.01
    findings = family_findings({1.0: near_dmmse})
    assert all(p.nearest == "ridge_lambda" and p.nearest_overall == "dmmse" for p in findings.points)
