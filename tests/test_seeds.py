"""The seed axis end to end: a tiny two-seed experiment built by Snakemake.

One module-scoped build (three M, two train seeds, paired SGLD seeds); the tests read
its stores, logs and Snakemake's own output, and dry-run a third seed.
"""

import re
import subprocess

import pytest
import yaml

from conftest import REPO, TINY_BLOCK
from test_workflow import SNAKEMAKE, _job_counts
from transient_ridge.store import open_dataset

SEEDS = [1, 7]
RUNS = [f"M{M}/s{seed}" for M in ("1", "4", "inf") for seed in SEEDS]
TARGETS = [f"results/tiny/runs/{run}/{store}" for run in RUNS for store in ("outputs.zarr", "llc.zarr")]


def _block(train, sgld):
    block = yaml.safe_load(yaml.safe_dump(TINY_BLOCK))
    block["seeds"].update(train=train, sgld=sgld)
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
    config = _config(root / "two.yaml", _block(SEEDS, [4, 9]))
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
    config = _config(root / "three.yaml", _block([*SEEDS, 3], [4, 9, 5]))
    targets = [*TARGETS, *(f"results/tiny/runs/M{M}/s3/{s}" for M in ("1", "4", "inf") for s in ("outputs.zarr", "llc.zarr"))]
    result = _snakemake("-n", *targets, config=config, work=work)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = _job_counts(result.stdout)
    assert counts.get("train") == 3 and counts.get("evaluate") == 3 and counts.get("llc_run") == 3, result.stdout[-3000:]
    assert set(re.findall(r"wildcards: exp=tiny, run=(\S+)", result.stdout)) == {"M1/s3", "M4/s3", "Minf/s3"}
