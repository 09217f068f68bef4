"""The seed axis end to end: a tiny two-seed experiment built by Snakemake.

One module-scoped build (three M, two train seeds with paired init and SGLD seeds); the tests read
its stores, logs and Snakemake's own output, and dry-run a third seed.
"""

import json
import re
import subprocess

import pytest
import yaml

from conftest import REPO, TINY_BLOCK
from test_workflow import SNAKEMAKE, _job_counts
from transient_ridge.claims import CLAIM_CHECKS
from transient_ridge.store import open_dataset

SEEDS = [1, 7]
RUNS = [f"M{M}/s{seed}" for M in ("1", "4", "inf") for seed in SEEDS]
TARGETS = ["results/tiny/claims.md", "results/tiny/figures/fig1.png"]


def _block(train, init, sgld):
    block = yaml.safe_load(yaml.safe_dump(TINY_BLOCK))
    block["seeds"].update(train=train, init=init, sgld=sgld)
    block["llc"].pop("calibration")  # an explicit epsilon: no calibration job
    return block


def _config(path, block):
    path.write_text(yaml.safe_dump({"experiments": {"tiny": block}}))
    return str(path)


def _snakemake(*args, config, work):
    command = [SNAKEMAKE, *args, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", config]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    work = root / "work"
    config = _config(root / "two.yaml", _block(SEEDS, [2, 5], [4, 9]))
    result = _snakemake("-c", "2", *TARGETS, config=config, work=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, work, result


def _jobs(stderr, rule):
    """The ``run`` wildcard of every job of ``rule`` in Snakemake's log of a run."""
    runs = []
    for block in re.split(r"\n(?=\[)", stderr):
        if re.search(rf"^(local)?rule {rule}:$", block, re.M):
            runs += re.findall(r"wildcards: exp=tiny, run=(\S+)", block)
    return sorted(runs)


def test_each_seed_of_each_M_trains_as_its_own_job(built):
    _, work, result = built
    assert _jobs(result.stderr, "train") == sorted(RUNS)
    assert _jobs(result.stderr, "llc_run") == sorted(RUNS)
    assert _jobs(result.stderr, "evaluate") == sorted(RUNS)
    for run in RUNS:
        assert (work / "logs/tiny/train" / f"{run}.log").exists()
        assert (work / "results/tiny/benchmarks/train" / f"{run}.tsv").exists()
        assert (work / "results/tiny/runs" / run / "checkpoints").is_dir()
    outputs = {run: open_dataset(work / "results/tiny/runs" / run / "outputs.zarr") for run in RUNS}
    assert {run: ds.attrs["seed"] for run, ds in outputs.items()} == {run: int(run.split("/s")[1]) for run in RUNS}
    # the seeds see other batches: their losses differ
    assert float(outputs["M4/s1"]["loss_ood"][-1]) != float(outputs["M4/s7"]["loss_ood"][-1])
    llc = open_dataset(work / "results/tiny/runs/M4/s7/llc.zarr")
    assert (llc.attrs["train_seed"], llc.attrs["seed"]) == (7, 9)  # the SGLD seed paired with train seed 7


def test_adding_a_seed_schedules_only_that_seeds_jobs(built):
    root, work, _ = built
    config = _config(root / "three.yaml", _block([*SEEDS, 3], [2, 5, 6], [4, 9, 5]))
    result = _snakemake("-n", *TARGETS, config=config, work=work)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = _job_counts(result.stdout)
    # the new seed's runs, and the stages that read every run; no task data, no other run
    assert counts == {"train": 3, "evaluate": 3, "llc_run": 3, "pca": 1, "llc": 1, "claims": 1, "figures_pca": 1, "total": 13}, counts  # fig1 is drawn by figures_pca
    assert set(re.findall(r"wildcards: exp=tiny, run=(\S+)", result.stdout)) == {"M1/s3", "M4/s3", "Minf/s3"}


def test_claims_report_each_claim_in_k_of_2_seeds_with_each_seeds_numbers(built):
    _, work, _ = built
    text = (work / "results/tiny/claims.md").read_text()
    assert "Train seeds: 1, 7." in text
    table = [line for line in text.splitlines() if re.match(r"\| \w+ \| holds in \d of 2 seeds", line)]
    assert len(table) == len(CLAIM_CHECKS), text[:3000]  # every claim is reported, testable or not
    for line in table:
        name, over_seeds, *per_seed = [cell.strip() for cell in line.strip("|").split("|")]
        counts = {"yes": per_seed.count("yes"), "no": per_seed.count("no"), "not testable": per_seed.count("not testable")}
        assert sum(counts.values()) == 2, line
        assert over_seeds.startswith(f"holds in {counts['yes']} of 2 seeds"), line
        assert (f"does not hold in {counts['no']}" in over_seeds) == bool(counts["no"]), line
        assert (f"not testable in {counts['not testable']}" in over_seeds) == bool(counts["not testable"]), line
    assert "## transient_ridge: holds in" in text and "| 4 | 1 |" in text and "| 4 | 7 |" in text
    report = json.loads((work / "results/tiny/claims.json").read_text())
    assert report["seeds"] == SEEDS and sum(report["counts"].values()) == 2 * len(CLAIM_CHECKS)
    smallest = next(c for c in report["claims"] if c["name"] == "smallest_M_ends_at_dmmse")
    ratios = {seed: claim["evidence"]["ratio"] for seed, claim in smallest["per_seed"].items()}
    assert set(ratios) == {"1", "7"} and ratios["1"] != ratios["7"]  # each seed's own number
    assert "## LLC estimates: diagnostics\n\n### Train seed 1\n" in text and "### Train seed 7" in text


def test_stores_downstream_of_the_runs_gain_a_seed_dim(built):
    _, work, _ = built
    pca = open_dataset(work / "results/tiny/pca.zarr")
    assert pca["trajectory"].dims == ("M", "seed", "step", "pc") and pca["seed"].values.tolist() == SEEDS
    llc = open_dataset(work / "results/tiny/llc.zarr")
    assert llc["llc_mean"].dims == ("M", "seed", "step") and llc["sgld_seed"].values.tolist() == [4, 9]


def test_the_seed_band_figure_is_drawn(built):
    _, work, _ = built
    figure = work / "results/tiny/figures/fig1.png"
    assert figure.stat().st_size > 10_000
