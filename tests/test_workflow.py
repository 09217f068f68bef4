"""The workflow: dry runs of every target, lint, environments in sync with pyproject."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO

SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))


def _snakemake(*args, cwd=REPO):
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _job_counts(stdout):
    counts = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.mark.parametrize("target, experiment", [("all", "mini"), ("paper", "paper"), ("transient", "transient"), ("paper_slice", "paper_slice")])
def test_dry_run_schedules_one_training_job_per_M(target, experiment, tmp_path):
    spec = yaml.safe_load((REPO / "config.yaml").read_text())["experiments"][experiment]
    train_seeds = spec.get("seeds", {}).get("train", 0)
    runs = len(spec["data"]["M"]) * (len(train_seeds) if isinstance(train_seeds, list) else 1)
    result = _snakemake("-n", target, "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"))
    assert result.returncode == 0, result.stderr[-3000:]
    counts = _job_counts(result.stdout)
    assert counts["train"] == runs and counts["evaluate"] == runs and counts["llc_run"] == runs
    assert counts["run_tasks"] == len(spec["data"]["M"])  # one task store per M, shared by its seeds
    for rule in ("tasks", "baselines", "pca", "llc", "claims", "figures_runs", "figures_llc"):
        assert counts[rule] == 1, rule  # every figure of a group in one job
    assert not any(rule in counts for rule in ("fig1_pca", "fig3", "figF_llc_traces"))


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_paper_dry_runs_with_each_profile(profile, tmp_path):
    if profile == "slurm":
        pytest.importorskip("snakemake_executor_plugin_slurm")
    result = _snakemake(
        "-n", "paper", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
        "--workflow-profile", str(REPO / "workflow" / "profiles" / profile),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _job_counts(result.stdout)["train"] == 23


def test_lint_is_clean():
    result = _snakemake("--lint")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_bad_config_fails_before_any_job_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  mini:\n    data:\n      D: 0\n")
    result = _snakemake("-n", "all", "--configfile", str(bad), "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "experiments.mini.data.D" in output and ">= 1" in output
    assert "Job stats" not in output  # failed before scheduling anything


def _normalise(name):
    return {"pytorch": "torch"}.get(name, name).lower().replace("_", "-")


def test_conda_envs_parse_and_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = {_normalise(re.split(r"[<>=!~ ]", dep)[0]) for dep in project["project"]["dependencies"]}
    env_files = sorted((REPO / "envs").glob("*.yaml"))
    assert env_files
    for path in env_files:
        env = yaml.safe_load(path.read_text())
        listed = {
            _normalise(re.split(r"[<>=!~ ]", dep)[0])
            for dep in env["dependencies"]
            if isinstance(dep, str)
        } - {"python", "pip"}
        assert listed == wanted, f"{path.name}: extra {listed - wanted}, missing {wanted - listed}"


def test_every_rule_names_an_existing_env_log_and_benchmark():
    texts = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', texts):
        assert (REPO / "workflow" / "rules" / env).resolve().exists(), env
    rules_with_script = texts.count("script:")
    assert texts.count("log:") == rules_with_script and texts.count("benchmark:") == rules_with_script


def _rule_blocks() -> dict[str, str]:
    """Each ``rule NAME:`` of workflow/rules/*.smk with its text up to the next rule."""
    blocks = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\s*$", path.read_text(), flags=re.M)
        blocks.update(zip(parts[1::2], parts[2::2]))
    return blocks


def test_cluster_profiles_set_resources_of_real_rules_and_the_cpu_profile_asks_for_no_gpu():
    """A renamed rule must not leave its profile entry behind: sbatch would get --gpus=1 on a CPU cluster."""
    blocks = _rule_blocks()
    gpu_rules = {name for name, text in blocks.items() if re.search(r"^\s*gpu=1,", text, flags=re.M)}
    assert {"train", "llc_run", "llc_calibration_point"} <= gpu_rules
    resources = {profile: yaml.safe_load((REPO / "workflow" / "profiles" / profile / "config.yaml").read_text())
                 ["set-resources"] for profile in ("slurm", "slurm-cpu")}
    for profile, named in resources.items():
        assert set(named) <= set(blocks), f"{profile}: set-resources names no rule: {sorted(set(named) - set(blocks))}"
    asking = sorted(rule for rule in gpu_rules if resources["slurm-cpu"].get(rule, {}).get("gpu") != 0)
    assert asking == [], f"slurm-cpu: these rules still ask sbatch for a GPU: {asking}"


def _write_tiny_config(path, block):
    path.write_text(yaml.safe_dump({"experiments": {"tiny": block}}))
    return str(path)


def test_adding_an_M_trains_only_the_new_run(tiny_block, tmp_path):
    # Train two tiny runs for real, then grow the grid: only the new M may be
    # scheduled for training (adding an M used to rewrite tasks.zarr, the input
    # of every run, and so retrain them all). Changing the model retrains all.
    workdir = tmp_path / "work"
    common = ("--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir))
    tiny_block["data"]["M"] = [1, "inf"]
    tiny_block["llc"].pop("calibration", None)
    first = _write_tiny_config(tmp_path / "first.yaml", tiny_block)
    targets = [f"results/tiny/runs/M{m}/predictions.zarr" for m in ("1", "inf")]
    result = _snakemake("-c", "1", *targets, "--configfile", first, *common)
    assert result.returncode == 0, result.stderr[-3000:]

    tiny_block["data"]["M"] = [1, 4, "inf"]
    grown = _write_tiny_config(tmp_path / "grown.yaml", tiny_block)
    targets.append("results/tiny/runs/M4/predictions.zarr")
    result = _snakemake("-n", *targets, "--configfile", grown, *common)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = _job_counts(result.stdout)
    assert counts.get("run_tasks") == 1 and counts.get("train") == 1, result.stdout[-3000:]
    assert "wildcards: exp=tiny, run=M4" in result.stdout

    tiny_block["model"]["d_model"] = 16
    wider = _write_tiny_config(tmp_path / "wider.yaml", tiny_block)
    result = _snakemake("-n", *targets, "--configfile", wider, *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _job_counts(result.stdout)["train"] == 3, result.stdout[-3000:]


def test_diverged_llc_estimates_do_not_stop_the_workflow(tiny_block, tmp_path):
    # An explicit epsilon far too large for the model makes every SGLD chain of
    # every estimate diverge. llc_run stores them as failed and exits 0; the
    # gather, the figure and the claims still run and show the failure.
    workdir = tmp_path / "work"
    tiny_block["data"]["M"] = [1, "inf"]
    tiny_block["llc"]["epsilon"] = 1.0e9
    tiny_block["llc"].pop("calibration")
    config = _write_tiny_config(tmp_path / "diverge.yaml", tiny_block)
    targets = ["results/tiny/figures/fig_llc_over_time.png", "results/tiny/claims.md"]
    result = _snakemake(
        "-c", "2", *targets, "--configfile", config, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from transient_ridge.store import open_dataset

    llc = open_dataset(workdir / "results/tiny/llc.zarr")
    assert np.isnan(llc["llc_mean"]).all()
    assert (llc["failed_chains"] == tiny_block["llc"]["num_chains"]).all()
    assert llc.attrs["epsilon"] == 1.0e9 and llc.attrs["epsilon_source"] == "config"
    log = (workdir / "logs/tiny/llc/M1.log").read_text()
    assert re.search(r"WARNING .*M=1 step \d+: no LLC estimate \(all \d+ SGLD chains diverged .* with epsilon=1e\+09", log)
    claims = (workdir / "results/tiny/claims.md").read_text()
    steps = llc.sizes["step"]
    assert "0 sound, 0 not converged (" in claims and f"{2 * steps} failed (no estimate" in claims
    assert "## LLC over training" in claims and "| 1 | " + " | ".join(["_failed_"] * steps) + " | too few sound" in claims
    assert (workdir / "results/tiny/figures/fig_llc_over_time.png").stat().st_size > 0

    # with an explicit epsilon the calibration grid is not llc_run's business:
    # adding one schedules the calibration, never a new estimate
    tiny_block["llc"]["calibration"] = {"M": [1], "epsilon": [1e-4, 1e-3], "gamma": [100.0]}
    config = _write_tiny_config(tmp_path / "calibrated.yaml", tiny_block)
    result = _snakemake(
        "-n", "tiny", "--configfile", config, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts = _job_counts(result.stdout)
    assert counts.get("llc_calibration") == 1 and "llc_run" not in counts, result.stdout[-3000:]


@pytest.mark.parametrize("epsilon, calibrates", [("auto", True), (1e-3, False)])
def test_llc_run_waits_for_the_calibration_only_when_epsilon_is_auto(tiny_block, tmp_path, epsilon, calibrates):
    tiny_block["llc"]["epsilon"] = epsilon
    config = _write_tiny_config(tmp_path / "eps.yaml", tiny_block)
    common = ("--configfile", config, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path / "work"))
    result = _snakemake("-n", "results/tiny/runs/M4/llc.zarr", *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("llc_calibration" in _job_counts(result.stdout)) == calibrates, result.stdout[-3000:]
    # either way the experiment's target builds the calibration store and its figure
    result = _snakemake("-n", "tiny", *common)
    counts = _job_counts(result.stdout)
    assert counts.get("llc_calibration") == 1 and counts.get("figures_llc_calibration") == 1, result.stdout[-3000:]
