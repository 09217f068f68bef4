"""Time a run's LLC fits stacked into one computation against the same fits one after another.

    python benchmarks/bench_llc_stacked.py                       # mini, M = 16, after `snakemake -c 2`
    python benchmarks/bench_llc_stacked.py --M inf --repeats 5 --results /tmp/clone/results

`llc_run` fits a run's checkpoints with ``llc.fit_checkpoints``: every chain of every
checkpoint is one row of one batched SGLD computation. The reference, measured in the same
process and interleaved with it, is ``llc.fit_checkpoint`` on each checkpoint in turn (what
`llc_run` did before). Both use the experiment's LLC settings at the ε stored in its
``llc.zarr``, the run's LLC checkpoints and the same seeds, so the estimates must agree to
float rounding; the script says so, or exits 1. Prints each repeat's seconds and the ratio
of the medians (> 1: stacking is faster). One thread, like the rule's job.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from transient_ridge.checkpoint import checkpoint_path, load_checkpoint
from transient_ridge.config import ExperimentConfig, load_yaml, parse_task_count, run_label
from transient_ridge.llc import fit_checkpoint, fit_checkpoints
from transient_ridge.llc._stage import llc_data
from transient_ridge.llc._steps import llc_steps
from transient_ridge.store import open_dataset
from transient_ridge.tasks import tasks_from_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="mini")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--results", default="results")
    parser.add_argument("--M", default="16", help="the run (M = 16: results/<exp>/runs/M16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    package_log = logging.getLogger("transient_ridge")
    level = package_log.level
    package_log.setLevel(logging.WARNING)  # the fits log every estimate; the table below is the output
    try:
        return compare(args)
    finally:
        package_log.setLevel(level)  # called in-process (the tests), the caller's logging is left as it was


def compare(args: argparse.Namespace) -> int:
    """Time a run's fits one after another and stacked; 0 when their estimates agree, else 1."""

    experiment = ExperimentConfig.from_dict(args.experiment, load_yaml(args.config)["experiments"][args.experiment])
    seed = experiment.seeds.calibration_seed  # the first train seed's runs (None without a seed axis)
    cfg = experiment.for_seed(seed)
    M = parse_task_count(args.M)
    run = run_label(M, seed)
    root = Path(args.results) / args.experiment
    run_dir = root / "runs" / run
    epsilon = float(open_dataset(root / "llc.zarr").attrs["epsilon"])
    tasks = tasks_from_dataset(open_dataset(root / "data" / "runs" / run.split("/")[0] / "tasks.zarr"))  # one per M
    data = llc_data(cfg, M, tasks)
    steps = [int(s) for s in llc_steps(cfg)]
    models = [load_checkpoint(checkpoint_path(run_dir / "checkpoints", s), device="cpu")[0] for s in steps]
    seeds = [cfg.seeds.sgld + s for s in steps]
    print(f"{args.experiment} {run}: {len(steps)} checkpoints {steps} x {cfg.llc.num_chains} chains, "
          f"eps={epsilon:g}, {args.threads} thread(s)")

    one_by_one, stacked = [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        alone = [fit_checkpoint(m, data, cfg.llc, seed=s, epsilon=epsilon) for m, s in zip(models, seeds)]
        one_by_one.append(time.perf_counter() - start)
        start = time.perf_counter()
        together = fit_checkpoints(models, data, cfg.llc, seeds=seeds, epsilon=epsilon)
        stacked.append(time.perf_counter() - start)
        print(f"repeat {repeat}: one after another {one_by_one[-1]:.2f} s, stacked {stacked[-1]:.2f} s", flush=True)
    a = np.array([r.llc_chain for r in alone])
    b = np.array([r.llc_chain for r in together])
    same = np.allclose(a, b, rtol=1e-4, atol=1e-6)
    print(f"estimates: one after another {[round(r.llc_mean, 3) for r in alone]}, "
          f"stacked {[round(r.llc_mean, 3) for r in together]} ({'the same' if same else 'DIFFERENT'})")
    ratio = statistics.median(one_by_one) / statistics.median(stacked)
    print(f"stacked / one after another: {ratio:.2f}x (median of {args.repeats})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
