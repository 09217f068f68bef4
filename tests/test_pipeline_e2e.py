"""End to end: the whole `mini` pipeline in a temporary directory, and its claims (slow).

    python -m pytest -m slow tests/test_pipeline_e2e.py                 # mini, ~10 minutes on 2 cores
    TRANSIENT_E2E=1 python -m pytest -m slow tests/test_pipeline_e2e.py  # also `transient` (~2 h 04 min)
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
    ):
        assert claims[name]["holds"], (name, claims[name]["evidence"])


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("TRANSIENT_E2E"), reason="set TRANSIENT_E2E=1 to run the ~2 h 04 min transient experiment"
)
def test_transient_experiment_rises_without_coming_halfway_to_ridge(tmp_path):
    # Measured on this project's CPU build (docs/transient.md): M = 8 and 11 pass the rise rules,
    # but their approach to ridge (0.89, 0.84 of the ridge-dMMSE_M gap) and OOD depth (0.64, 0.51)
    # stay above 0.5, so the transient claim does not hold and the other four do. The ridge-rise
    # margin is thin, so a different CPU's rounding can flip the rise: the failure message
    # carries the evidence to compare with docs/transient.md.
    claims = {c["name"]: c for c in _run_experiment("transient", "transient", tmp_path)}
    failing = {name: c["evidence"] for name, c in claims.items() if not c["holds"] and name != "transient_ridge"}
    assert not failing, failing
    runs = claims["transient_ridge"]["evidence"]["runs"]
    assert [M for M, run in runs.items() if run["rises"]] == ["8", "11"], runs
    assert all(run["approach"] > 0.5 for run in runs.values()) and not claims["transient_ridge"]["holds"], runs
