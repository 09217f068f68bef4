"""Are an experiment's final LLC estimates settled? Against chains k times longer in SGLD time at a smaller ε.

    python benchmarks/llc_plateau_check.py --experiment mini                 # after `snakemake -c 2`
    python benchmarks/llc_plateau_check.py --results /tmp/run/results --experiment mini --ratio 3 --longer 3

Reads ``{results}/{experiment}/llc.zarr``: every run's final estimate
(``llc.final_estimate``) and the ε it was made with. Refits each final checkpoint
with the pipeline's ``llc.fit_checkpoint`` at ``ε / ratio`` with burn-in and draws
``longer`` times as long in SGLD time (units of 1/(εγ), so ``ratio × longer`` times
the steps), the same chain count and an independent seed, and prints both with the
relative difference. Exit status 1 when a difference exceeds ``--tolerance`` (10 %)
or an estimate is not sound: the estimates then still depend on ε or on the chain
length. ``--threads`` (default 1) sets torch's threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from pathlib import Path

import torch
import yaml

from transient_ridge.checkpoint import checkpoint_path, load_checkpoint
from transient_ridge.config import ExperimentConfig, format_task_count, run_label
from transient_ridge.llc import fit_checkpoint, final_estimate, llc_data, read_estimates
from transient_ridge.seeds import select_seed
from transient_ridge.store import open_dataset
from transient_ridge.tasks import tasks_from_dataset

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="mini")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--ratio", type=float, default=3.0, help="reference epsilon = epsilon / ratio")
    parser.add_argument("--longer", type=float, default=3.0, help="reference chains this many times longer in SGLD time")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--M", nargs="*", default=None, help="runs to check (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-seed", type=int, default=None,
                        help="with a list of train seeds: whose runs (default: the first)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("transient_ridge").setLevel(logging.ERROR)  # the table says it all

    block = yaml.safe_load(args.config.read_text())["experiments"][args.experiment]
    experiment = ExperimentConfig.from_dict(args.experiment, block)
    seed = experiment.seeds.calibration_seed  # the first train seed, or None without a seed axis
    if args.train_seed is not None and experiment.seeds.has_seed_axis:
        seed = args.train_seed
    cfg = experiment.for_seed(seed)
    results = args.results / args.experiment
    llc = select_seed(open_dataset(results / "llc.zarr"), seed) if seed is not None else open_dataset(results / "llc.zarr")
    table = read_estimates(llc)
    epsilon = float(llc.attrs["epsilon"])
    reference = dataclasses.replace(cfg.llc, burnin_time=cfg.llc.burnin_time * args.longer,
                                    draw_time=cfg.llc.draw_time * args.longer)
    ref_epsilon = epsilon / args.ratio
    print(f"{args.experiment}: final estimates at epsilon={epsilon:g} ({cfg.llc.burnin_time:g} + {cfg.llc.draw_time:g} "
          f"units of 1/(eps*gamma)) against epsilon={ref_epsilon:g} with {reference.burnin_time:g} + "
          f"{reference.draw_time:g} units; {cfg.llc.num_chains} chains, threads={args.threads}", flush=True)
    print("| M | step | final LLC ± s.e. (status) | reference LLC ± s.e. (status) | reference steps | difference | "
          "wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    tasks = tasks_from_dataset(open_dataset(results / "data" / "tasks.zarr"))
    worst, ok = 0.0, True
    for M in table.coords["M"]:
        label = format_task_count(float(M))
        if args.M and label not in args.M:
            continue
        final = final_estimate(table, float(M))
        if final.step is None:
            continue
        model, _ = load_checkpoint(checkpoint_path(results / "runs" / run_label(float(M), seed) / "checkpoints", final.step))
        start = time.perf_counter()
        ref = fit_checkpoint(model, llc_data(cfg, float(M), tasks), reference,
                             seed=cfg.seeds.sgld + final.step + 1_000_003, epsilon=ref_epsilon)
        wall = time.perf_counter() - start
        difference = final.mean / ref.llc_mean - 1.0
        sound = final.status == "sound" and ref.status == "sound"
        ok &= sound and abs(difference) <= args.tolerance
        worst = max(worst, abs(difference)) if math.isfinite(difference) else math.inf
        print(f"| {label} | {final.step} | {final.mean:.3f} ± {final.sem:.3f} ({final.status}) | {ref.llc_mean:.3f} ± "
              f"{ref.llc_sem:.3f} ({ref.status}) | {ref.num_burnin} + {ref.num_draws} | {difference:+.1%} | {wall:.0f} |",
              flush=True)
    verdict = "PASS" if ok else "FAIL"
    print(f"\n{verdict}: largest |difference| {worst:.1%} (tolerance {args.tolerance:.0%}; every estimate sound: "
          f"{'yes' if ok or worst <= args.tolerance else 'see the table'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
