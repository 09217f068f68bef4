"""Claims: the transience measure on constructed curves, and every claim on small synthetic stores
where it must hold, where it must not, and where it cannot be tested."""

import json
import math
import re

import numpy as np
import pytest
import xarray as xr

from claim_stores import (
    MINI_ADVANTAGE,
    MINI_KINDS,
    MINI_LLC,
    MINI_SEM,
    RIDGE_OOD,
    TRANSIENT_OOD,
    TRANSIENT_RIDGE,
    baselines_of,
    outputs_of,
    seeded,
    stores,
)
from llc_stores import restatus
from transient_ridge.claims import (
    CLAIM_CHECKS,
    FAILS,
    HOLDS,
    NOT_TESTABLE,
    Claim,
    ClaimInputs,
    Report,
    Tally,
    check_claims,
    check_seeds,
    claims_report,
    measure_transience,
    ridge_dmmse_gap,
    steps_between,
    trend,
)
from transient_ridge.claims import health_markdown
from transient_ridge.llc import llc_health_report

def _inputs(kinds, llc, *, min_transient_runs=1, **kwargs):
    return ClaimInputs(*stores(kinds, llc, **kwargs), min_transient_runs=min_transient_runs)


def _claims(inputs):
    return {c.name: c for c in check_claims(inputs)}


def _mini(llc=None, kinds=None, **kwargs):
    kwargs.setdefault("sem", MINI_SEM)
    kwargs.setdefault("advantage", MINI_ADVANTAGE)
    return _inputs(kinds or MINI_KINDS, {**MINI_LLC, **(llc or {})}, **kwargs)


# ------------------------------------------------------------------------------ the transience measure


def test_transient_curve_is_detected():
    dmmse = np.array([1.0, 0.6, 0.4, 0.3, 0.2, 0.1])
    m = measure_transience(outputs_of(16.0, TRANSIENT_OOD, TRANSIENT_RIDGE, dmmse), 1, baselines_of({16.0: 0.4}))
    assert m.is_transient and m.ood_min_step == 20 and abs(m.ood_rise - 0.5) < 1e-12
    # approach = closest distance to ridge / gap = 0.1 / 0.4; OOD depth = (0.8 - 0.7) / (1.1 - 0.7)
    assert abs(m.approach - 0.25) < 1e-12 and abs(m.ood_depth - 0.25) < 1e-12 and m.ridge_dmmse_gap == 0.4
    assert (m.ridge_ood_loss, m.dmmse_ood_loss) == (0.7, 1.1)


def test_a_run_that_never_came_halfway_to_ridge_is_not_transient():
    dmmse = np.array([1.0, 0.6, 0.4, 0.3, 0.2, 0.1])
    outputs = outputs_of(16.0, TRANSIENT_OOD, TRANSIENT_RIDGE, dmmse)
    # the closest distance to ridge (0.1) is 2/3 of the gap: it rises, but it never was near ridge
    m = measure_transience(outputs, 1, baselines_of({16.0: 0.15}))
    assert m.rises and not m.approaches_ridge and not m.is_transient and abs(m.approach - 2 / 3) < 1e-12
    # an OOD minimum 0.75 exactly halfway from ridge (0.5) to dMMSE_16 (1.0) is still allowed; beyond it is not
    halfway = outputs_of(16.0, np.array([2.0, 1.0, 0.75, 0.9, 1.1, 1.2]), TRANSIENT_RIDGE, dmmse)
    m = measure_transience(halfway, 1, baselines_of({16.0: 0.4}, ridge_ood=0.5, dmmse_ood={16.0: 1.0}))
    assert m.ood_depth == 0.5 and m.is_transient
    m = measure_transience(halfway, 1, baselines_of({16.0: 0.4}, ridge_ood=0.5, dmmse_ood={16.0: 0.875}))
    assert abs(m.ood_depth - 2 / 3) < 1e-12 and not m.is_transient
    # without the baselines the approach cannot be measured, and nothing counts as transient
    m = measure_transience(outputs, 1)
    assert m.rises and m.approach is None and m.ood_depth is None and not m.is_transient


def test_approach_and_depth_use_the_smoothed_series():
    ood = np.array([2.0, 1.0, 0.7, 1.0, 1.1, 1.3, 1.4])
    ridge = np.array([1.0, 0.3, 0.0, 0.3, 0.35, 0.4, 0.5])
    dmmse = np.linspace(1.0, 0.1, 7)
    m = measure_transience(outputs_of(16.0, ood, ridge, dmmse), 3, baselines_of({16.0: 0.4}))
    # smoothed over 3 checkpoints the minima are 0.9 (OOD, step 20) and 0.2 (ridge distance, step 20)
    assert abs(m.ood_min - 0.9) < 1e-12 and abs(m.ridge_min - 0.2) < 1e-12
    assert abs(m.approach - 0.5) < 1e-12 and abs(m.ood_depth - 0.5) < 1e-12


def test_monotone_curve_is_not_transient():
    falling = np.linspace(2, 1, 6)
    assert not measure_transience(outputs_of(16.0, falling, falling, falling), 1).is_transient
    # rise too small
    ood = np.array([2.0, 1.0, 0.8, 0.85, 0.86, 0.88])
    assert not measure_transience(outputs_of(16.0, ood, ood, np.linspace(1, 0.1, 6)), 1).is_transient


def test_transience_needs_the_distance_to_dmmse_to_keep_falling():
    flat_dmmse = np.array([1.0, 0.6, 0.4, 0.4, 0.38, 0.39])  # ends at 0.975x its value at the OOD minimum
    m = measure_transience(outputs_of(16.0, TRANSIENT_OOD, TRANSIENT_RIDGE, flat_dmmse), 1)
    assert not m.is_transient and abs(m.dmmse_final_over_at_ood_min - 0.975) < 1e-12


def test_ridge_dmmse_gap_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    Ms, n_seq, K = [1.0, 16.0, math.inf], 5, 3
    ridge_id, dmmse_id = rng.normal(size=(2, len(Ms), n_seq, K))
    baselines = xr.Dataset(
        {"ridge_id": (("M", "id_sequence", "token"), ridge_id), "dmmse_id": (("M", "id_sequence", "token"), dmmse_id)},
        coords={"M": Ms},
    )
    total = 0.0
    for i in range(n_seq):
        for k in range(K):
            total += (ridge_id[1, i, k] - dmmse_id[1, i, k]) ** 2
    assert abs(ridge_dmmse_gap(baselines, 16.0) - total / (n_seq * K)) < 1e-12
    assert ridge_dmmse_gap(xr.Dataset({"loss_ridge_ood": ("token", [1.0])}), 16.0) is None


# ------------------------------------------------------------------------------------ the verdicts


def test_a_claim_gives_a_reason_exactly_when_it_is_not_testable():
    assert Claim.untestable("x", "rule.", "no run").reason == "no run"
    assert Claim.judged("x", "rule.", True, "found").verdict == HOLDS
    assert Claim.judged("x", "rule.", False, "found").verdict == FAILS
    with pytest.raises(ValueError, match="a reason is given exactly when it is not testable"):
        Claim("x", "rule.", NOT_TESTABLE, "found")
    with pytest.raises(ValueError, match="a reason is given exactly when it is not testable"):
        Claim("x", "rule.", HOLDS, "found", reason="because")
    with pytest.raises(ValueError, match="is not one of"):
        Claim("x", "rule.", "maybe", "found")


def test_a_tally_counts_all_three_verdicts():
    tally = Tally.of([HOLDS, FAILS, NOT_TESTABLE, HOLDS])
    assert (tally.holds, tally.fails, tally.not_testable, tally.total) == (2, 1, 1, 4)
    assert tally.in_seeds() == "holds in 2 of 4 seeds (does not hold in 1, not testable in 1)"
    assert Tally.of([HOLDS] * 3).in_seeds() == "holds in 3 of 3 seeds"
    assert Tally.of([NOT_TESTABLE] * 3).in_seeds() == "holds in 0 of 3 seeds (not testable in 3)"
    assert tally.of_claims() == "2 hold, 1 do not hold, 1 not testable (of 4 claims)"


def test_every_claim_is_reported_even_when_nothing_can_be_tested():
    # one M = inf run that does not end at ridge, no finite M
    claims = _claims(_inputs({math.inf: "ridge"}, {math.inf: 5.0}, inf_excess=0.5))
    assert list(claims) == [check.__name__ for check in CLAIM_CHECKS]
    assert claims["infinite_M_ends_at_ridge"].verdict == FAILS
    assert all(c.verdict == NOT_TESTABLE and c.reason for name, c in claims.items() if name != "infinite_M_ends_at_ridge")
    assert claims["smallest_M_ends_at_dmmse"].reason == "no finite M"
    assert claims["llc_crosses_M_inf"].reason.startswith("M = inf does not end at ridge (final OOD loss +50.0% ")


# ------------------------------------------------------------------------ where the runs end, the PCA


def test_smallest_M_ends_at_dmmse_holds_fails_and_is_not_testable():
    assert _claims(_mini())["smallest_M_ends_at_dmmse"].holds
    claim = _claims(_mini(kinds={**MINI_KINDS, 1.0: "ridge"}))["smallest_M_ends_at_dmmse"]
    assert claim.verdict == FAILS and claim.evidence["ratio"] == 1.0 / 0.01
    assert _claims(_inputs({math.inf: "ridge"}, {math.inf: 5.0}))["smallest_M_ends_at_dmmse"].verdict == NOT_TESTABLE


def test_infinite_M_ends_at_ridge_by_the_endpoint_rule():
    claim = _claims(_mini(inf_excess=0.049))["infinite_M_ends_at_ridge"]
    assert claim.holds and abs(claim.evidence["excess"] - 0.049) < 1e-9
    claim = _claims(_mini(inf_excess=0.07))["infinite_M_ends_at_ridge"]
    assert claim.verdict == FAILS and claim.finding == "final OOD loss 7.0% above ridge's"
    no_inf = {M: k for M, k in MINI_KINDS.items() if math.isfinite(M)}
    claim = _claims(_inputs(no_inf, MINI_LLC))["infinite_M_ends_at_ridge"]
    assert claim.verdict == NOT_TESTABLE and claim.reason == "no M = inf run"


def test_pca_separates_predictors_holds_fails_and_is_not_testable():
    claim = _claims(_mini())["pca_separates_predictors"]
    assert claim.holds and claim.finding.endswith("both ends nearer their own predictor")
    inputs = _mini()
    swapped = inputs.pca.copy(deep=True)
    swapped["trajectory"].loc[{"M": 1.0}] = [[5.0, 5.0], [0.2, 0.1]]  # M = 1 ends at ridge
    claim = _claims(ClaimInputs(inputs.outputs, inputs.baselines, swapped, inputs.llc))["pca_separates_predictors"]
    assert claim.verdict == FAILS and "M = 1 ends nearer ridge" in claim.finding
    no_inf = {M: k for M, k in MINI_KINDS.items() if math.isfinite(M)}
    assert _claims(_inputs(no_inf, MINI_LLC))["pca_separates_predictors"].verdict == NOT_TESTABLE


def test_transient_ridge_holds_fails_and_is_not_testable():
    kinds = {1.0: "dmmse", 16.0: "transient", 24.0: "transient", math.inf: "ridge"}
    llc = {1.0: 1.0, 16.0: 9.0, 24.0: 10.0, math.inf: 5.0}
    claim = _claims(_inputs(kinds, llc, min_transient_runs=2))["transient_ridge"]
    assert claim.holds and claim.evidence["transient_M"] == ["16", "24"]
    claim = _claims(_mini(min_transient_runs=2))["transient_ridge"]
    assert claim.verdict == FAILS and claim.finding == "none of M = 4, 16, 64 is transient"
    # two intermediate M cannot show three transient runs
    claim = _claims(_inputs(kinds, llc, min_transient_runs=3))["transient_ridge"]
    assert claim.verdict == NOT_TESTABLE and claim.reason == "2 intermediate M; the claim needs 3"
    assert claim.evidence["transient_M"] == ["16", "24"]  # still measured and reported
    # without the ridge-dMMSE_M gap and the OOD losses the approach cannot be measured
    inputs = _inputs(kinds, llc)
    bare = ClaimInputs(inputs.outputs, xr.Dataset({"loss_ridge_ood": ("token", [RIDGE_OOD])}), inputs.pca, inputs.llc)
    assert _claims(bare)["transient_ridge"].verdict == NOT_TESTABLE


# ---------------------------------------------------------------------- the loss-complexity account


def test_trend_is_the_weighted_least_squares_slope_against_log2_M():
    rng = np.random.default_rng(1)
    for _ in range(20):
        Ms = np.sort(rng.choice([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0], size=rng.integers(2, 6), replace=False))
        values, sems = rng.normal(size=len(Ms)), rng.uniform(0.05, 1.0, size=len(Ms))
        fit = trend(Ms, values, sems)
        # independent reference: numpy's weighted polyfit (weights 1/sigma) with the unscaled covariance
        coef, cov = np.polyfit(np.log2(Ms), values, 1, w=1 / sems, cov="unscaled")
        assert abs(fit["slope"] - coef[0]) < 1e-9 and abs(fit["slope_sem"] - math.sqrt(cov[0, 0])) < 1e-9
        assert abs(fit["z"] - fit["slope"] / fit["slope_sem"]) < 1e-12
    step = steps_between([1.0, 4.0], [2.0, 1.0], [0.3, 0.4])[0]
    assert (step["from"], step["to"], step["change"], step["change_sem"]) == ("1", "4", -1.0, 0.5)


def test_loss_gap_shrinks_holds_on_mini_and_fails_when_it_grows_or_stays():
    claim = _claims(_mini(sem=0.1))["loss_gap_shrinks_with_M"]
    assert claim.holds and [r["M"] for r in claim.evidence["rows"]] == ["1", "4", "16"]
    assert claim.evidence["trend"]["z"] < -2
    # a consecutive pair whose advantage grows by far more than 2 s.e. (0.01 each, paired)
    claim = _claims(_mini(advantage={**MINI_ADVANTAGE, 4.0: 0.30}))["loss_gap_shrinks_with_M"]
    assert claim.verdict == FAILS and "grows from M = 1 to 4" in claim.finding
    # the same advantage at every M: no shrink across the range
    claim = _claims(_mini(advantage={M: 0.1 for M in MINI_KINDS}))["loss_gap_shrinks_with_M"]
    assert claim.verdict == FAILS and claim.evidence["trend"]["z"] == pytest.approx(0.0, abs=1e-9)


def test_loss_gap_is_not_testable_with_one_dmmse_like_run():
    kinds = {1.0: "dmmse", 16.0: "ridge", math.inf: "ridge"}
    claim = _claims(_inputs(kinds, {1.0: 1.0, 16.0: 5.0, math.inf: 6.0}))["loss_gap_shrinks_with_M"]
    assert claim.verdict == NOT_TESTABLE and claim.reason == "fewer than two dMMSE-like runs (1)"


def test_llc_grows_holds_on_mini():
    claim = _claims(_mini())["llc_grows_with_M_for_dmmse_runs"]
    assert claim.holds and [r["M"] for r in claim.evidence["rows"]] == ["1", "4", "16"]
    assert all(step["z"] > 2 for step in claim.evidence["steps"])


def test_llc_grows_fails_when_a_consecutive_pair_falls():
    # mini's stores edited as in the report that prompted this rule: M = 4 at 9.0 and M = 16 at 4.0
    # (s.e. 0.1), both still above M = 1's 1.03; comparing each with the smallest M would hold
    claim = _claims(_mini(llc={4.0: 9.0, 16.0: 4.0}, sem=0.1))["llc_grows_with_M_for_dmmse_runs"]
    assert claim.verdict == FAILS and "falls from M = 4 to 16 by 35.4 s.e." in claim.finding


def test_llc_grows_fails_without_a_significant_rise():
    # no consecutive fall beyond 2 s.e., but no rise either: 5.0, 5.1, 5.05 (s.e. 0.2)
    claim = _claims(_mini(llc={1.0: 5.0, 4.0: 5.1, 16.0: 5.05}, sem=0.2))["llc_grows_with_M_for_dmmse_runs"]
    assert claim.verdict == FAILS and abs(claim.evidence["trend"]["z"]) < 2


def test_llc_grows_is_not_testable_with_an_unsound_estimate_or_one_dmmse_like_run():
    inputs = _mini()
    llc = inputs.llc.copy(deep=True)
    llc["rhat"][2, 1] = 1.5  # M = 16, final step: the chains disagree
    claim = _claims(ClaimInputs(inputs.outputs, inputs.baselines, inputs.pca, restatus(llc)))[
        "llc_grows_with_M_for_dmmse_runs"]
    assert claim.verdict == NOT_TESTABLE and claim.reason == "an estimate is not sound: M = 16 (not converged)"
    # a problem at a step the claim does not read changes nothing
    llc["rhat"][2, 1], llc["rhat"][2, 0] = 1.0, 1.5
    assert _claims(ClaimInputs(inputs.outputs, inputs.baselines, inputs.pca, restatus(llc)))[
        "llc_grows_with_M_for_dmmse_runs"].holds
    kinds = {1.0: "dmmse", 16.0: "ridge", math.inf: "ridge"}
    claim = _claims(_inputs(kinds, {1.0: 1.0, 16.0: 5.0, math.inf: 6.0}))["llc_grows_with_M_for_dmmse_runs"]
    assert claim.verdict == NOT_TESTABLE


def test_crossing_does_not_hold_on_mini_and_says_on_which_side_the_data_lie():
    claim = _claims(_mini())["llc_crosses_M_inf"]
    assert claim.verdict == FAILS and claim.evidence["bracket"] is None and claim.evidence["side"] == "below"
    assert claim.finding == "no crossing in the range: below M = inf's 12.4 ± 0.65 at M = 1, 4, 16, nearest z = -4.6"
    # every dMMSE-like LLC above M = inf's: no crossing either, on the other side
    claim = _claims(_mini(llc={math.inf: 0.5}))["llc_crosses_M_inf"]
    assert claim.verdict == FAILS and claim.evidence["side"] == "above"


def test_crossing_holds_and_names_the_bracket_when_the_largest_dmmse_like_M_passes_M_inf():
    # mini's stores edited: M = 16 ends at 20.0 (s.e. 0.18), 11 s.e. above M = inf's 12.4 ± 0.65
    claim = _claims(_mini(llc={16.0: 20.0}))["llc_crosses_M_inf"]
    assert claim.holds and claim.evidence["bracket"] == ["4", "16"]
    assert claim.finding == "crosses M = inf's 12.4 ± 0.65 in [M_a, M_b] = [4, 16]"
    # an M within 2 s.e. of M = inf between them widens the bracket to the significant ends
    kinds = {**MINI_KINDS, 24.0: "dmmse"}
    claim = _claims(_mini(kinds=kinds, llc={16.0: 12.6, 24.0: 20.0}, sem={**MINI_SEM, 24.0: 0.2}))["llc_crosses_M_inf"]
    assert claim.holds and claim.evidence["bracket"] == ["4", "24"]


def test_crossing_back_down_or_downwards_does_not_hold():
    kinds = {**MINI_KINDS, 24.0: "dmmse"}
    claim = _claims(_mini(kinds=kinds, llc={16.0: 20.0, 24.0: 3.0}, sem={**MINI_SEM, 24.0: 0.2}))["llc_crosses_M_inf"]
    assert claim.verdict == FAILS and claim.evidence["passages"] == [["4", "16", "above"], ["16", "24", "below"]]
    claim = _claims(_mini(llc={1.0: 20.0, 4.0: 18.0, 16.0: 3.0}))["llc_crosses_M_inf"]
    assert claim.verdict == FAILS and "down in [4, 16]" in claim.finding


def test_every_comparison_with_M_inf_is_not_testable_when_M_inf_does_not_end_at_ridge():
    claims = _claims(_mini(llc={16.0: 20.0}, inf_excess=0.07))
    for name in ("llc_crosses_M_inf", "loss_complexity_tradeoff", "tradeoff_predicts_transience"):
        assert claims[name].verdict == NOT_TESTABLE, name
        assert claims[name].reason == ("M = inf does not end at ridge (final OOD loss +7.0% from ridge's; the "
                                       "endpoint rule allows 5%)")
    # the claims that do not compare with M = inf are still tested
    assert claims["llc_grows_with_M_for_dmmse_runs"].holds and claims["loss_gap_shrinks_with_M"].holds


def test_an_unsound_M_inf_makes_the_comparisons_with_it_not_testable():
    inputs = _mini()
    llc = inputs.llc.copy(deep=True)
    llc["failed_chains"][4, 1] = 1  # M = inf, final step: a chain diverged
    claims = _claims(ClaimInputs(inputs.outputs, inputs.baselines, inputs.pca, restatus(llc)))
    assert claims["llc_crosses_M_inf"].reason == "an estimate is not sound: M = inf (unreliable)"
    assert claims["tradeoff_predicts_transience"].verdict == NOT_TESTABLE


TRANSIENT_KINDS = {1.0: "dmmse", 16.0: "transient", 64.0: "ridge", math.inf: "ridge"}


def test_tradeoff_holds_when_the_transient_run_is_better_and_more_complex_and_fails_otherwise():
    claim = _claims(_inputs(TRANSIENT_KINDS, {1.0: 1.0, 16.0: 9.0, 64.0: 6.0, math.inf: 5.0}))[
        "loss_complexity_tradeoff"]
    assert claim.holds and claim.evidence["transient_M"] == ["16"] and claim.finding == "explained: M = 16"
    claim = _claims(_inputs(TRANSIENT_KINDS, {1.0: 1.0, 16.0: 3.0, 64.0: 6.0, math.inf: 5.0}))[
        "loss_complexity_tradeoff"]
    assert claim.verdict == FAILS and claim.evidence["tradeoff_rows"][0]["llc_vs_M_inf"] == "lower"
    # better than ridge by less than 2 s.e. (0.01 paired) does not explain it either
    claim = _claims(_inputs(TRANSIENT_KINDS, {1.0: 1.0, 16.0: 9.0, 64.0: 6.0, math.inf: 5.0},
                            advantage={M: 0.015 for M in TRANSIENT_KINDS}))["loss_complexity_tradeoff"]
    assert claim.verdict == FAILS and claim.evidence["tradeoff_rows"][0]["loss_vs_ridge"] == "within 2 s.e."


def test_tradeoff_is_not_testable_without_a_transient_run():
    claim = _claims(_mini())["loss_complexity_tradeoff"]
    assert claim.verdict == NOT_TESTABLE and claim.reason == "no transient run to explain"


def test_prediction_holds_on_mini_and_fails_when_a_predicted_ridge_phase_is_not_seen():
    claim = _claims(_mini())["tradeoff_predicts_transience"]
    assert claim.holds and claim.finding == "agrees at M = 4, 16: none predicted, none seen"
    rows = {r["M"]: r for r in claim.evidence["prediction_rows"]}
    assert rows["64"]["predicted"] is None and rows["4"]["agree"] and rows["16"]["agree"]
    # M = 16 more complex than M = inf and better than ridge: a ridge phase predicted, none seen
    claim = _claims(_mini(llc={16.0: 20.0}))["tradeoff_predicts_transience"]
    assert claim.verdict == FAILS and "disagrees at M = 16: ridge phase predicted, none seen" in claim.finding
    # the transient M = 16, more complex than M = inf: predicted and seen
    claim = _claims(_inputs(TRANSIENT_KINDS, {1.0: 1.0, 16.0: 9.0, 64.0: 6.0, math.inf: 5.0}))[
        "tradeoff_predicts_transience"]
    assert claim.holds and claim.finding == "agrees at M = 16: ridge phase predicted, one seen"


def test_prediction_is_not_testable_when_no_M_gives_one():
    # the one dMMSE-like intermediate M has an LLC within 2 s.e. of M = inf's
    claim = _claims(_mini(llc={4.0: 12.5, 16.0: 12.3}))["tradeoff_predicts_transience"]
    assert claim.verdict == NOT_TESTABLE and claim.reason == "no intermediate M gives a prediction"


# ---------------------------------------------------------------------------------------- seeds


def test_each_seed_is_compared_with_its_own_M_inf_and_every_verdict_is_counted():
    # seed 1 crosses, seed 2's M = inf ends 7 % above ridge (not testable), seed 3 is mini as it is
    experiment = seeded({1: {"llc": {16.0: 20.0}}, 2: {"inf_excess": 0.07}, 3: {}})
    views = ClaimInputs.views(*experiment)
    assert sorted(views) == [1, 2, 3]
    checked = check_seeds(views)
    verdicts = {seed: {c.name: c.verdict for c in claims} for seed, claims in checked.items()}
    assert [verdicts[s]["llc_crosses_M_inf"] for s in (1, 2, 3)] == [HOLDS, NOT_TESTABLE, FAILS]
    # each seed's view gives the claims of that seed's own stores
    one = ClaimInputs({M: ds.sel(seed=3).drop_vars("seed") for M, ds in experiment[0].items()}, experiment[1],
                      experiment[2].sel(seed=3), experiment[3].sel(seed=3))
    assert [c.verdict for c in check_claims(one)] == [c.verdict for c in checked[3]]
    report = Report("x", checked)
    crossing = next(c for c in report.summary if c.name == "llc_crosses_M_inf")
    assert crossing.line == "holds in 1 of 3 seeds (does not hold in 1, not testable in 1)"
    text = report.markdown()
    assert "## llc_crosses_M_inf: holds in 1 of 3 seeds (does not hold in 1, not testable in 1)" in text
    assert "| llc_crosses_M_inf | holds in 1 of 3 seeds (does not hold in 1, not testable in 1) | yes | not testable | no |" \
        in text
    payload = json.loads(report.json())
    assert payload["seeds"] == [1, 2, 3]
    assert sum(payload["counts"].values()) == 3 * len(CLAIM_CHECKS)
    assert payload["counts"] == {k: sum(verdicts[s][n] == k for s in verdicts for n in verdicts[s])
                                 for k in (HOLDS, FAILS, NOT_TESTABLE)}
    row = next(c for c in payload["claims"] if c["name"] == "llc_crosses_M_inf")
    assert row["counts"] == {HOLDS: 1, FAILS: 1, NOT_TESTABLE: 1} and not row["holds"]
    assert row["per_seed"]["1"]["evidence"]["bracket"] == ["4", "16"] and row["per_seed"]["2"]["reason"]


# --------------------------------------------------------------------------------------- the report


def test_the_report_counts_every_verdict_and_states_each_rule():
    claims = check_claims(_mini())
    report = Report("mini", {None: claims})
    text = report.markdown()
    assert "6 hold, 2 do not hold, 1 not testable (of 9 claims)." in text
    assert "| loss_complexity_tradeoff | **not testable** | no transient run to explain |" in text
    for claim in claims:
        assert f"## {claim.name}: {claim.verdict}\n\nRule: {claim.statement}\n" in text
        assert not re.search(r"[.;] [A-Z]", claim.statement) and claim.statement.endswith("."), claim.statement
    payload = json.loads(report.json(provenance={"git_commit": "abc"}))
    assert payload["counts"] == {HOLDS: 6, FAILS: 2, NOT_TESTABLE: 1} and payload["provenance"]["git_commit"] == "abc"
    row = next(c for c in payload["claims"] if c["name"] == "loss_complexity_tradeoff")
    assert (row["verdict"], row["holds"], row["reason"]) == (NOT_TESTABLE, False, "no transient run to explain")
    # M = inf's label and infinite values are JSON strings; the crossing's row of M = 1 keeps its number
    crossing = next(c for c in payload["claims"] if c["name"] == "llc_crosses_M_inf")
    assert crossing["evidence"]["rows"][0]["M"] == "1" and isinstance(crossing["evidence"]["llc_M_inf"], float)
    assert json.loads(Report("x", {None: [Claim.judged("y", "r.", True, "f", {"v": math.inf})]}).json())[
        "claims"][0]["evidence"]["v"] == "inf"


def test_sections_are_added_in_one_call_for_one_seed_or_many():
    report = Report("mini", {None: check_claims(_mini())})
    report.add_per_seed("findings", "Fitted predictor families", lambda seed: (["| a | b |"], {"seed": seed}))
    assert "\n## Fitted predictor families\n\n| a | b |\n" in report.markdown()
    assert json.loads(report.json())["findings"] == {"seed": None}
    two = Report("x", check_seeds(ClaimInputs.views(*seeded({1: {}, 2: {}}))))
    two.add_per_seed("findings", "Fitted predictor families", lambda seed: ([f"family of seed {seed}"], seed * 10))
    assert "## Fitted predictor families\n\n### Train seed 1\n\nfamily of seed 1\n\n### Train seed 2\n" in two.markdown()
    assert json.loads(two.json())["findings"] == {"1": 10, "2": 20}
    with pytest.raises(ValueError, match="section key 'findings' is taken"):
        two.add("findings", "again", [], None)


def test_claims_report_adds_the_llc_sections_per_seed():
    experiment = seeded({1: {}, 2: {}})
    report = claims_report("x", *experiment, calibration=None, calibration_seed=1)
    assert report.keys() == ["llc_over_training", "llc_at_t_crit", "llc_calibration", "llc_health"]
    payload = json.loads(report.json())
    assert sorted(payload["llc_health"]) == ["1", "2"] and payload["llc_calibration"] is None
    text = report.markdown()
    assert "## LLC estimates: diagnostics\n\n### Train seed 1\n" in text and "LLC step size" not in text
    one = claims_report("mini", *stores(MINI_KINDS, MINI_LLC))
    assert json.loads(one.json())["llc_health"]["counts"]["sound"] == 10


def test_a_failed_final_estimate_is_not_replaced_by_an_earlier_one_and_the_report_shows_it():
    inputs = _mini()
    llc = inputs.llc.copy(deep=True)
    for name in ("llc_mean", "llc_sem", "trace_peak", "rhat", "half_z"):
        llc[name][2, 1] = np.nan  # M = 16, final step: every chain diverged
    llc["failed_chains"][2, 1] = 4
    llc = restatus(llc)
    claim = _claims(ClaimInputs(inputs.outputs, inputs.baselines, inputs.pca, llc))["llc_grows_with_M_for_dmmse_runs"]
    assert claim.verdict == NOT_TESTABLE and claim.reason == "an estimate is not sound: M = 16 (failed)"
    health = llc_health_report(llc)
    assert health["counts"] == {"sound": 9, "not converged": 0, "unreliable": 0, "failed": 1}
    text = "\n".join(health_markdown(health))
    assert "1 failed (no estimate" in text and "| 16 | 50 | n/a | failed |" in text
