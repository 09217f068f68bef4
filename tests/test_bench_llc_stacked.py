"""benchmarks/bench_llc_stacked.py on a tiny finished run: it times both ways and checks the estimates agree."""

import logging
import sys

import pytest
import torch
import xarray as xr
import yaml

from conftest import REPO, TINY_BLOCK
from transient_ridge.config import ExperimentConfig
from transient_ridge.store import write_dataset
from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
from transient_ridge.train import ProbeInputs, train_run

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_llc_stacked  # noqa: E402


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A results folder laid out as the workflow writes it: one trained run, its tasks, an llc.zarr with ε."""
    root = tmp_path_factory.mktemp("bench")
    (root / "config.yaml").write_text(yaml.safe_dump({"experiments": {"tiny": TINY_BLOCK}}))
    cfg = ExperimentConfig.from_dict("tiny", TINY_BLOCK).for_run(4.0)
    torch.set_num_threads(1)
    tasks = build_tasks_dataset(cfg)
    write_dataset(tasks, root / "results" / "tiny" / "data" / "runs" / "M4" / "tasks.zarr")
    train_run(cfg, 4.0, tasks_from_dataset(tasks), ProbeInputs.from_tasks_dataset(tasks, 4.0), root / "results" / "tiny" / "runs" / "M4")
    write_dataset(xr.Dataset(attrs={"epsilon": 1e-3}), root / "results" / "tiny" / "llc.zarr")
    return root


def args(root):
    return ["--experiment", "tiny", "--config", str(root / "config.yaml"), "--results", str(root / "results"),
            "--M", "4", "--repeats", "1"]


def test_stacked_and_one_after_another_agree(finished, capsys):
    package_log = logging.getLogger("transient_ridge")
    level = package_log.level
    assert bench_llc_stacked.main(args(finished)) == 0
    assert package_log.level == level and not logging.root.manager.disable  # quiet only while it ran
    out = capsys.readouterr().out
    assert "(the same)" in out and "stacked / one after another:" in out and "2 checkpoints [10, 40]" in out


def test_estimates_that_differ_fail_the_benchmark(finished, capsys, monkeypatch):
    real = bench_llc_stacked.fit_checkpoints

    def off_by_a_little(*a, **kw):
        records = real(*a, **kw)
        records[0].llc_chain[0] += 0.01  # what a stacking bug would look like
        return records

    monkeypatch.setattr(bench_llc_stacked, "fit_checkpoints", off_by_a_little)
    assert bench_llc_stacked.main(args(finished)) == 1
    assert "DIFFERENT" in capsys.readouterr().out
