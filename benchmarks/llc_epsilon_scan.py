"""LLC of one run's checkpoints against the SGLD step size ε: is the estimate healthy there?

    python benchmarks/llc_epsilon_scan.py --experiment transient --M 8 --steps 2000 60000
    python benchmarks/llc_epsilon_scan.py --M 8 --steps 2000 --epsilon 1e-3 3e-4 1e-4 --burnin 100 --draws 200

Runs the calibration's sweep (``build_calibration_dataset``: the experiment's
γ, nβ, chains, batch and the per-step seed of ``llc_run``; ε, burn-in and draws
from the command line) on the checkpoints of ``results/{experiment}/runs/M{M}/``
at the given steps (the ``llc_calibration`` rule uses an early, a middle and the
final LLC checkpoint), and prints per (step, ε) the estimate, the largest loss the
chains reached and the mean loss over the last 50 draws, then the ε the
calibration rule (docs/llc.md) would choose from these points. A healthy ε gives
traces that stay within a few times the initial loss and an estimate that changes
little when ε is halved.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import torch
import yaml

from transient_ridge.config import ExperimentConfig, LLCCalibrationConfig
from transient_ridge.llc_stage import build_calibration_dataset
from transient_ridge.store import open_dataset
from transient_ridge.tasks import tasks_from_dataset

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="transient")
    parser.add_argument("--M", default="8", help="the run (an integer or inf)")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="checkpoint steps (with weights)")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[1e-3, 3e-4, 1e-4, 3e-5])
    parser.add_argument("--burnin", type=int, default=100)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    block = yaml.safe_load((REPO / "config.yaml").read_text())["experiments"][args.experiment]
    cfg = ExperimentConfig.from_dict(args.experiment, block)
    M = math.inf if args.M == "inf" else float(args.M)
    grid = LLCCalibrationConfig(M=(M,), epsilon=tuple(args.epsilon), gamma=(cfg.llc.gamma,))
    llc = dataclasses.replace(cfg.llc, num_burnin=args.burnin, num_draws=args.draws, calibration=grid)
    if llc.epsilon_is_auto:
        llc = dataclasses.replace(llc, epsilon=min(args.epsilon))  # the sweep sets epsilon itself
    cfg = dataclasses.replace(cfg, llc=llc)
    results = REPO / "results" / args.experiment
    tasks = tasks_from_dataset(open_dataset(results / "data" / "tasks.zarr"))
    checkpoints = {M: results / "runs" / f"M{args.M}" / "checkpoints"}
    print(f"{args.experiment} M={args.M}: gamma={llc.gamma:g} nbeta={llc.nbeta:g} "
          f"chains={llc.num_chains} burn-in={args.burnin} draws={args.draws}")
    print(f"{'step':>7s} {'epsilon':>8s} {'LLC':>14s} {'init loss':>9s} {'trace max':>9s} {'last-50 mean':>12s}")
    sweep = build_calibration_dataset(cfg, checkpoints, tasks, steps=args.steps)
    for step in sweep["step"].values:
        at_step = sweep.sel(M=M, gamma=llc.gamma, step=step)
        for epsilon in sweep["epsilon"].values:
            at = at_step.sel(epsilon=epsilon)
            trace = at["loss_trace"]
            print(f"{int(step):7d} {epsilon:8.1e} {float(at['llc_mean']):7.2f} ± {float(at['llc_std']):4.2f} "
                  f"{float(at_step['init_loss']):9.3f} {float(trace.max()):9.2f} "
                  f"{float(trace.isel(draw=slice(-50, None)).mean()):12.3f}", flush=True)
    print(f"calibration rule: epsilon = {float(sweep['chosen_epsilon']):g} ({sweep.attrs['choice_reason']})")

if __name__ == "__main__":
    main()
