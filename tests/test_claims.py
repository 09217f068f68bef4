"""Claims: transience detection on constructed curves; claims report without raising."""

import json
import math

import numpy as np
import xarray as xr

from llc_stores import llc_store, restatus
from transient_ridge.claims import (
    check_claims,
    claims_json,
    claims_markdown,
    measure_transience,
    ridge_dmmse_gap,
)
from transient_ridge.llc import calibration_report, llc_health_report, llc_sections_markdown


def _outputs(M, ood, ridge, dmmse):
    steps = np.arange(len(ood)) * 10
    return xr.Dataset(
        {"loss_ood": ("step", ood), "dist_ridge": ("step", ridge), "dist_dmmse": ("step", dmmse),
         "loss_id": ("step", dmmse)},
        coords={"step": steps},
        attrs={"M": M},
    )


def _baselines(gaps, ridge_ood=0.7, dmmse_ood=None, n_seq=4, K=2):
    """Baselines with known answers: ``gaps`` maps M to the ridge–dMMSE_M distance, ``dmmse_ood``
    to dMMSE_M's OOD loss (every token); ridge's OOD loss is ``ridge_ood``."""
    Ms = sorted(gaps)
    dmmse_ood = dmmse_ood or {M: 1.1 for M in Ms}
    ridge_id = np.zeros((len(Ms), n_seq, K))
    dmmse_id = np.stack([np.full((n_seq, K), math.sqrt(gaps[M])) for M in Ms])  # squared difference = gap
    return xr.Dataset(
        {"ridge_id": (("M", "id_sequence", "token"), ridge_id), "dmmse_id": (("M", "id_sequence", "token"), dmmse_id),
         "loss_ridge_ood": ("token", np.full(K, ridge_ood)),
         "loss_dmmse_ood": (("M", "token"), np.stack([np.full(K, dmmse_ood[M]) for M in Ms]))},
        coords={"M": Ms},
    )


TRANSIENT_OOD = np.array([2.0, 1.0, 0.8, 0.9, 1.1, 1.2])
TRANSIENT_RIDGE = np.array([1.0, 0.3, 0.1, 0.15, 0.2, 0.3])


def test_transient_curve_is_detected():
    dmmse = np.array([1.0, 0.6, 0.4, 0.3, 0.2, 0.1])
    m = measure_transience(_outputs(16.0, TRANSIENT_OOD, TRANSIENT_RIDGE, dmmse), 1, _baselines({16.0: 0.4}))
    assert m.is_transient and m.ood_min_step == 20 and abs(m.ood_rise - 0.5) < 1e-12
    # approach = closest distance to ridge / gap = 0.1 / 0.4; OOD depth = (0.8 - 0.7) / (1.1 - 0.7)
    assert abs(m.approach - 0.25) < 1e-12 and abs(m.ood_depth - 0.25) < 1e-12 and m.ridge_dmmse_gap == 0.4
    assert (m.ridge_ood_loss, m.dmmse_ood_loss) == (0.7, 1.1)


def test_a_run_that_never_came_halfway_to_ridge_is_not_transient():
    dmmse = np.array([1.0, 0.6, 0.4, 0.3, 0.2, 0.1])
    outputs = _outputs(16.0, TRANSIENT_OOD, TRANSIENT_RIDGE, dmmse)
    # the closest distance to ridge (0.1) is 2/3 of the gap: it rises, but it never was near ridge
    m = measure_transience(outputs, 1, _baselines({16.0: 0.15}))
    assert m.rises and not m.approaches_ridge and not m.is_transient and abs(m.approach - 2 / 3) < 1e-12
    # an OOD minimum 0.75 exactly halfway from ridge (0.5) to dMMSE_16 (1.0) is still allowed; beyond it is not
    halfway = _outputs(16.0, np.array([2.0, 1.0, 0.75, 0.9, 1.1, 1.2]), TRANSIENT_RIDGE, dmmse)
    m = measure_transience(halfway, 1, _baselines({16.0: 0.4}, ridge_ood=0.5, dmmse_ood={16.0: 1.0}))
    assert m.ood_depth == 0.5 and m.is_transient
    m = measure_transience(halfway, 1, _baselines({16.0: 0.4}, ridge_ood=0.5, dmmse_ood={16.0: 0.875}))
    assert abs(m.ood_depth - 2 / 3) < 1e-12 and not m.is_transient
    # without the baselines the approach cannot be measured, and nothing counts as transient
    m = measure_transience(outputs, 1)
    assert m.rises and m.approach is None and m.ood_depth is None and not m.is_transient


def test_approach_and_depth_use_the_smoothed_series():
    ood = np.array([2.0, 1.0, 0.7, 1.0, 1.1, 1.3, 1.4])
    ridge = np.array([1.0, 0.3, 0.0, 0.3, 0.35, 0.4, 0.5])
    dmmse = np.linspace(1.0, 0.1, 7)
    m = measure_transience(_outputs(16.0, ood, ridge, dmmse), 3, _baselines({16.0: 0.4}))
    # smoothed over 3 checkpoints the minima are 0.9 (OOD, step 20) and 0.2 (ridge distance, step 20)
    assert abs(m.ood_min - 0.9) < 1e-12 and abs(m.ridge_min - 0.2) < 1e-12
    assert abs(m.approach - 0.5) < 1e-12 and abs(m.ood_depth - 0.5) < 1e-12


def test_monotone_curve_is_not_transient():
    falling = np.linspace(2, 1, 6)
    assert not measure_transience(_outputs(16.0, falling, falling, falling), 1).is_transient
    # rise too small
    ood = np.array([2.0, 1.0, 0.8, 0.85, 0.86, 0.88])
    assert not measure_transience(_outputs(16.0, ood, ood, np.linspace(1, 0.1, 6)), 1).is_transient


def test_check_claims_reports_holds_and_failures():
    steps = 6
    outputs = {
        1.0: _outputs(1.0, np.linspace(3, 2, steps), np.full(steps, 1.0), np.linspace(0.5, 0.01, steps)),
        16.0: _outputs(16.0, np.array([2.0, 1.0, 0.8, 0.9, 1.1, 1.2]), np.array([1.0, 0.3, 0.1, 0.15, 0.2, 0.3]),
                       np.linspace(1.0, 0.1, steps)),
        math.inf: _outputs(math.inf, np.linspace(2, 1.02, steps), np.linspace(1, 0.01, steps), np.linspace(1, 0.01, steps)),
    }
    baselines = _baselines({1.0: 0.5, 16.0: 0.4, math.inf: 0.0}, ridge_ood=1.0, dmmse_ood={1.0: 3.0, 16.0: 1.2, math.inf: 1.0})
    pca = xr.Dataset(
        {
            "predictor_projection": (("predictor", "pc"), [[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]]),
            "trajectory": (("M", "step", "pc"), np.array([[[5, 5], [9.5, 0.2]], [[5, 5], [2, 2]], [[5, 5], [0.3, 0.1]]], float)),
            "explained_variance_ratio": ("pc", [0.5, 0.2]),
        },
        coords={"predictor": ["ridge", "dmmse_M1", "dmmse_M16"], "pc": [1, 2], "M": [1.0, 16.0, math.inf]},
    )
    llc = llc_store([[1.0, 2.0], [3.0, 6.0], [5.0, 9.0]], M=[1.0, 16.0, math.inf], steps=[10, 50])
    claims = {c.name: c for c in check_claims(outputs, baselines, pca, llc, min_transient_runs=1)}
    assert claims["smallest_M_ends_at_dmmse"].holds
    assert claims["infinite_M_ends_at_ridge"].holds
    assert claims["pca_separates_predictors"].holds
    assert claims["llc_grows_with_M_for_dmmse_runs"].holds
    assert claims["transient_ridge"].holds and claims["transient_ridge"].evidence["transient_M"] == ["16"]
    # the transient M = 16 ends with a lower LLC (6) than M = inf (9): the tradeoff does not explain it
    assert not claims["loss_complexity_tradeoff"].holds and not claims["tradeoff_predicts_transience"].holds
    text = claims_markdown("x", list(claims.values()))
    assert "5 of 7 claims hold" in text
    assert '"inf"' in claims_json("x", list(claims.values())) or "inf" in claims_json("x", list(claims.values()))
    # a failing claim is reported, not raised
    outputs[math.inf] = _outputs(math.inf, np.linspace(2, 1.5, steps), np.ones(steps), np.ones(steps))
    claims = {c.name: c for c in check_claims(outputs, baselines, pca, llc, min_transient_runs=1)}
    assert not claims["infinite_M_ends_at_ridge"].holds


def test_transience_needs_the_distance_to_dmmse_to_keep_falling():
    ood = np.array([2.0, 1.0, 0.8, 0.9, 1.1, 1.2])
    ridge = np.array([1.0, 0.3, 0.1, 0.15, 0.2, 0.3])
    flat_dmmse = np.array([1.0, 0.6, 0.4, 0.4, 0.38, 0.39])  # ends at 0.975x its value at the OOD minimum
    m = measure_transience(_outputs(16.0, ood, ridge, flat_dmmse), 1)
    assert not m.is_transient and abs(m.dmmse_final_over_at_ood_min - 0.975) < 1e-12


def test_ridge_dmmse_gap_matches_a_plain_loop_and_reaches_the_report():
    rng = np.random.default_rng(0)
    Ms, n_seq, K = [1.0, 16.0, math.inf], 5, 3
    ridge_id, dmmse_id = rng.normal(size=(2, len(Ms), n_seq, K))
    baselines = xr.Dataset(
        {"ridge_id": (("M", "id_sequence", "token"), ridge_id), "dmmse_id": (("M", "id_sequence", "token"), dmmse_id),
         "loss_ridge_ood": ("token", np.ones(K))},
        coords={"M": Ms},
    )
    total = 0.0
    for i in range(n_seq):
        for k in range(K):
            total += (ridge_id[1, i, k] - dmmse_id[1, i, k]) ** 2
    assert abs(ridge_dmmse_gap(baselines, 16.0) - total / (n_seq * K)) < 1e-12
    assert ridge_dmmse_gap(xr.Dataset({"loss_ridge_ood": ("token", [1.0])}), 16.0) is None

    steps = 6
    ridge = np.array([1.0, 0.3, 0.1, 0.15, 0.2, 0.3])
    outputs = {
        1.0: _outputs(1.0, np.linspace(3, 2, steps), np.ones(steps), np.linspace(0.5, 0.01, steps)),
        16.0: _outputs(16.0, np.array([2.0, 1.0, 0.8, 0.9, 1.1, 1.2]), ridge, np.linspace(1.0, 0.1, steps)),
    }
    pca = xr.Dataset(
        {"predictor_projection": (("predictor", "pc"), [[0.0, 0.0], [10.0, 0.0]]),
         "trajectory": (("M", "step", "pc"), np.zeros((2, 2, 2))), "explained_variance_ratio": ("pc", [0.5, 0.2])},
        coords={"predictor": ["ridge", "dmmse_M1"], "pc": [1, 2], "M": [1.0, 16.0]},
    )
    llc = llc_store([[1.0], [2.0]], M=[1.0, 16.0], steps=[50])
    claim = {c.name: c for c in check_claims(outputs, baselines, pca, llc)}["transient_ridge"]
    run = claim.evidence["runs"]["16"]
    assert run["ridge_dmmse_gap"] == ridge_dmmse_gap(baselines, 16.0)
    assert f"| {0.1 / run['ridge_dmmse_gap']:.2f} |" in claims_markdown("x", [claim])


def _two_dmmse_like_runs(steps=6):
    """Outputs of M = 1 and 16 heading to dMMSE, with baselines and a PCA the LLC claim needs."""
    outputs = {
        1.0: _outputs(1.0, np.linspace(3, 2, steps), np.ones(steps), np.linspace(0.5, 0.01, steps)),
        16.0: _outputs(16.0, np.linspace(3, 2, steps), np.ones(steps), np.linspace(0.5, 0.01, steps)),
    }
    baselines = xr.Dataset({"loss_ridge_ood": ("token", [1.0])})
    pca = xr.Dataset(
        {"predictor_projection": (("predictor", "pc"), [[0.0, 0.0], [10.0, 0.0]]),
         "trajectory": (("M", "step", "pc"), np.zeros((2, 2, 2))), "explained_variance_ratio": ("pc", [0.5, 0.2])},
        coords={"predictor": ["ridge", "dmmse_M1"], "pc": [1, 2], "M": [1.0, 16.0]},
    )
    return outputs, baselines, pca


def test_llc_claim_reports_trace_peaks_and_refuses_spiked_estimates():
    outputs, baselines, pca = _two_dmmse_like_runs()
    llc = llc_store([[1.0, 2.0], [3.0, np.nan]], M=[1.0, 16.0], steps=[10, 50])
    claim = {c.name: c for c in check_claims(outputs, baselines, pca, llc)}["llc_grows_with_M_for_dmmse_runs"]
    assert claim.holds and claim.evidence["final_trace_peak_over_init_loss"] == {"1": 2.0, "16": 2.0}
    # M=16's last record is at step 10: a spike there makes the comparison untrustworthy
    llc["trace_peak"][1, 0] = 20.0
    claim = {c.name: c for c in check_claims(outputs, baselines, pca, restatus(llc))}["llc_grows_with_M_for_dmmse_runs"]
    assert not claim.holds and claim.evidence["spiked_runs"] == ["16"]
    assert claim.evidence["final_trace_peak_over_init_loss"]["16"] == 20.0
    # chains that have not converged there refuse it too
    llc["trace_peak"][1, 0] = 2.0
    llc["rhat"][1, 0] = 1.5
    claim = {c.name: c for c in check_claims(outputs, baselines, pca, restatus(llc))}["llc_grows_with_M_for_dmmse_runs"]
    assert not claim.holds and claim.evidence["final_status"]["16"] == "not converged"
    # a problem at a step the claim does not read changes nothing
    llc["rhat"][1, 0] = 1.0
    llc["trace_peak"][0, 0] = 50.0
    assert {c.name: c for c in check_claims(outputs, baselines, pca, restatus(llc))}["llc_grows_with_M_for_dmmse_runs"].holds


def test_llc_claim_refuses_a_failed_final_estimate_and_claims_md_shows_it():
    outputs, baselines, pca = _two_dmmse_like_runs()
    llc = llc_store([[1.0, 2.0], [3.0, 4.0]], M=[1.0, 16.0], steps=[10, 50], attrs={"epsilon": 1e-3})
    for name in ("llc_mean", "llc_sem", "trace_peak", "rhat", "half_z"):
        llc[name][1, 1] = np.nan  # M=16, final step: every chain diverged
    llc["failed_chains"][1, 1] = 4
    llc = restatus(llc)
    claim = {c.name: c for c in check_claims(outputs, baselines, pca, llc)}["llc_grows_with_M_for_dmmse_runs"]
    # the failed final estimate is not replaced by the earlier one (3.0 > 2.0 would hold)
    assert not claim.holds and claim.evidence["unsound_runs"] == ["16"]
    assert claim.evidence["final_status"] == {"1": "sound", "16": "failed"}
    health = llc_health_report(llc)
    assert health["counts"] == {"sound": 3, "not converged": 0, "unreliable": 0, "failed": 1}
    assert health["not_sound"][0]["M"] == "16" and health["not_sound"][0]["step"] == 50
    text = claims_markdown("x", [claim], llc_sections_markdown(health, None))
    assert "1 failed (no estimate" in text and "| 16 | 50 | n/a | failed |" in text
    assert '"failed": 1' in claims_json("x", [claim], {"llc_health": health})


def test_calibration_table_shows_the_chosen_epsilon():
    dims3, dims4 = ("M", "step", "epsilon"), ("M", "step", "epsilon", "gamma")
    mean = np.array([[[[5.0], [5.2]]]])
    ones = np.ones_like(mean)
    cal = xr.Dataset(
        {"llc_mean": (dims4, mean), "llc_sem": (dims4, 0.1 * mean), "failed_chains": (dims4, np.zeros_like(mean, int)),
         "trace_peak": (dims4, 2 * ones), "rhat": (dims4, ones), "half_z": (dims4, 0 * ones),
         "mala_acceptance": (dims4, 0.6 * ones), "healthy": (dims3, np.ones((1, 1, 2), bool)),
         "plateau": (dims3, [[[False, True]]]), "accepted": (dims3, [[[False, True]]]),
         "eligible": (("M", "step"), [[True]]), "num_burnin": (("epsilon", "gamma"), [[167], [50]]),
         "num_draws": (("epsilon", "gamma"), [[334], [100]]), "chosen_epsilon": ((), 1e-3)},
        coords={"M": [math.inf], "step": [100], "epsilon": [3e-4, 1e-3], "gamma": [100.0]},
        attrs={"chosen_gamma": 100.0, "rule_satisfied": 1, "choice_reason": "because", "burnin_time": 5.0,
               "draw_time": 10.0, "num_chains": 4},
    )
    report = calibration_report(cal)
    assert report["chosen_epsilon"] == 1e-3 and report["rule_satisfied"] and len(report["rows"]) == 2
    text = "\n".join(llc_sections_markdown(None, report))
    assert "Chosen ε = **0.001**" in text and "**rule satisfied**" in text
    assert "| inf | 100 | 0.001 | 50 + 100 | 5.2 ± 0.52 | sound | 1.000 | +0.00 | 0.60 | 2 | yes | yes | yes |" in text


def _seed_stores():
    """Two seeds of M = 1, 16, inf: M = 16 is transient in seed 1 only (seed 2 never nears ridge)."""
    from transient_ridge.seeds import runs_by_M

    steps = 6
    runs = []
    for seed, ridge16 in ((1, np.array([1.0, 0.3, 0.1, 0.15, 0.2, 0.3])), (2, np.array([1.0, 0.8, 0.3, 0.35, 0.4, 0.5]))):
        for M, ood, ridge, dmmse in (
            (1.0, np.linspace(3, 2, steps), np.full(steps, 1.0), np.linspace(0.5, 0.01, steps)),
            (16.0, np.array([2.0, 1.0, 0.8, 0.9, 1.1, 1.2]), ridge16, np.linspace(1.0, 0.1, steps)),
            (math.inf, np.linspace(2, 1.02, steps), np.linspace(1, 0.01, steps), np.linspace(1, 0.01, steps)),
        ):
            run = _outputs(M, ood, ridge, dmmse)
            run.attrs.update(seed=seed, t_crit=20)
            runs.append(run)
    outputs = runs_by_M(runs, seed_axis=True)
    trajectory = np.array([[[5, 5], [9.5, 0.2]], [[5, 5], [2, 2]], [[5, 5], [0.3, 0.1]]], float)
    pca = xr.Dataset(
        {
            "predictor_projection": (("predictor", "pc"), [[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]]),
            "trajectory": (("M", "seed", "step", "pc"), np.stack([trajectory, trajectory], axis=1)),
            "explained_variance_ratio": ("pc", [0.5, 0.2]),
        },
        coords={"predictor": ["ridge", "dmmse_M1", "dmmse_M16"], "pc": [1, 2], "M": [1.0, 16.0, math.inf], "seed": [1, 2]},
    )
    means = {1: [[1.0, 2.0], [3.0, 6.0], [5.0, 9.0]], 2: [[1.0, 2.0], [3.0, 1.5], [5.0, 9.0]]}
    llc = xr.concat(
        [llc_store(means[seed], M=[1.0, 16.0, math.inf], steps=[10, 50]) for seed in (1, 2)],
        dim=xr.DataArray([1, 2], dims="seed"),
    ).transpose("M", "seed", ...)
    baselines = _baselines({1.0: 0.5, 16.0: 0.4, math.inf: 0.0}, ridge_ood=1.0, dmmse_ood={1.0: 3.0, 16.0: 1.2, math.inf: 1.0})
    return outputs, baselines, pca, llc


def test_claims_are_checked_per_seed_and_counted():
    from transient_ridge.claims import check_claims_over_seeds, seed_claims_json, seed_claims_markdown, summarize_over_seeds

    outputs, baselines, pca, llc = _seed_stores()
    per_seed = check_claims_over_seeds(outputs, baselines, pca, llc, min_transient_runs=1)
    assert sorted(per_seed) == [1, 2]
    # each seed's claims equal check_claims on that seed's own stores
    assert [c.holds for c in per_seed[2]] == [c.holds for c in check_claims(
        {M: ds.sel(seed=2) for M, ds in outputs.items()}, baselines, pca.sel(seed=2), llc.sel(seed=2), min_transient_runs=1)]
    summary = {c.name: c for c in summarize_over_seeds(per_seed)}
    transient = summary["transient_ridge"]
    assert (transient.holds_in, transient.seeds, transient.holds) == (1, [1, 2], False)
    assert transient.per_seed[2].evidence["runs"]["16"]["approach"] == 0.3 / 0.4  # seed 2 never came halfway
    assert summary["llc_grows_with_M_for_dmmse_runs"].holds_in == 1  # seed 2: M = 16's LLC 1.5 < 2.0
    assert summary["smallest_M_ends_at_dmmse"].verdict == "holds in 2 of 2 seeds"
    text = seed_claims_markdown("x", list(summary.values()))
    assert "| transient_ridge | 1 of 2 seeds | yes | NO |" in text
    assert "## transient_ridge: holds in 1 of 2 seeds" in text and "M = 16 transient in 1 of 2 seeds" in text
    assert "| 16 | 2 | 0.8 (20) | -1.00 | +50.0% | 0.3 (20) | 0.4 | 0.75 |" in text and "| rises only |" in text
    report = json.loads(seed_claims_json("x", list(summary.values())))
    assert report["seeds"] == [1, 2]
    row = next(c for c in report["claims"] if c["name"] == "transient_ridge")
    assert row["holds_in"] == 1 and row["per_seed"]["1"]["holds"] and not row["per_seed"]["2"]["holds"]
