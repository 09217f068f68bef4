"""End to end: the whole `mini` pipeline in a temporary directory, and its claims (slow).

    python -m pytest -m slow tests/test_pipeline_e2e.py                 # mini, ~10 minutes on 2 cores
    TRANSIENT_E2E=1 python -m pytest -m slow tests/test_pipeline_e2e.py  # also `transient` (~2 h 30 min)
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))


def _run_experiment(target, experiment, workdir):
    result = subprocess.run(
        [SNAKEMAKE, "-c", "2", target, "--directory", str(workdir), "--snakefile", str(REPO / "Snakefile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    figures = workdir / "results" / experiment / "figures"
    for name in ("fig1", "fig3", "fig1_pca", "figF_llc_traces", "fig_llc_over_time"):
        assert (figures / f"{name}.png").stat().st_size > 10_000
    return json.loads((workdir / "results" / experiment / "claims.json").read_text())["claims"]


@pytest.mark.slow
def test_mini_pipeline_builds_every_figure_and_its_claims_hold(tmp_path):
    claims = {c["name"]: c for c in _run_experiment("all", "mini", tmp_path)}
    for name in (
        "smallest_M_ends_at_dmmse",
        "infinite_M_ends_at_ridge",
        "pca_separates_predictors",
        "llc_grows_with_M_for_dmmse_runs",
        "tradeoff_predicts_transience",
    ):
        assert claims[name]["verdict"] == "holds", (name, claims[name]["finding"], claims[name]["evidence"])
    # mini's dMMSE-like LLC stays below M = inf's: nothing crosses, and no transient run needs explaining
    assert claims["llc_crosses_M_inf"]["finding"].startswith("no crossing in the range"), claims["llc_crosses_M_inf"]
    assert claims["loss_complexity_tradeoff"]["verdict"] == "not testable", claims["loss_complexity_tradeoff"]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("TRANSIENT_E2E"), reason="set TRANSIENT_E2E=1 to run the transient experiment (~2 h 30 min)"
)
def test_transient_experiment_comes_halfway_to_ridge_only_where_it_does_not_yet_memorise(tmp_path):
    # Measured on this project's CPU build (docs/transient.md, three seeds): no intermediate M is
    # transient in any seed. M = 16 rises (in seed 1) but comes only 0.63-0.67 of the ridge-dMMSE_M
    # gap towards ridge; M = 32 comes within 0.47-0.49 in every seed but has barely begun to
    # memorise at 40 000 steps. Rises differ between CPUs' rounding; the approach ratios are far
    # from 0.5 except M = 32's, so the test asserts those and the per-seed verdict.
    claims = {c["name"]: c for c in _run_experiment("transient", "transient", tmp_path)}
    transient = claims["transient_ridge"]
    assert transient["seeds"] == [1, 2, 3] and transient["counts"]["holds"] == 0, transient
    assert claims["smallest_M_ends_at_dmmse"]["counts"]["holds"] == 3, claims["smallest_M_ends_at_dmmse"]
    for seed, claim in transient["per_seed"].items():
        runs = claim["evidence"]["runs"]
        assert runs["16"]["approach"] > 0.55 and runs["32"]["approach"] < 0.52, (seed, runs)
