"""LLC estimates of a run's checkpoints against ε, with chains sized in SGLD time: settled? converged? what cost?

    python benchmarks/llc_sgld_time.py --experiment mini --M 4 inf --steps 3000 --epsilon 1e-4 3e-4 1e-3
    python benchmarks/llc_sgld_time.py --results /tmp/run/results --experiment mini --M inf --steps 100 580 3000 \\
        --epsilon 3e-4 1e-3 --chains 4 --burnin-time 5 --draw-time 10
    python benchmarks/llc_sgld_time.py --experiment mini --M inf --steps 3000 --epsilon 3e-4 --profile 30 --chains 8

Every estimate goes through the pipeline's own ``transient_ridge.llc.fit_checkpoint``
(the experiment's γ, nβ, SGLD batch, n and the per-step seed of ``llc_run``), on the
checkpoints of ``{results}/{experiment}/runs/M{M}/``, with burn-in and draws given in
units of ``1/(εγ)`` steps. Prints one Markdown row per (M, step, ε): the chain length
in steps, λ̂ ± s.e., the status (``llc.estimate_status``) and its diagnostics (split
R̂, half-drift z, MALA acceptance, trace peak) and the wall time of the fit, then what
the calibration rule (``llc.choose_epsilon``) would choose from these points.
``--threads`` (default 1) sets torch's threads, so that timings from a shared machine
are comparable.

``--profile UNITS`` instead runs one long fit per (M, step, ε) with no burn-in and
``UNITS`` units of draws, and prints how the estimate settles (``nβ (mean minibatch loss −
ℓ_n(w*))`` per unit of SGLD time, mean ± s.e. over chains), then the half-drift z and split
R̂ of stationary windows (``--window`` units, every quarter window from unit 5 on, the
chains in groups of 4): the false-alarm check of the diagnostics' thresholds.
"""

from __future__ import annotations

import argparse
import logging
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from transient_ridge.checkpoint import checkpoint_path, load_checkpoint
from transient_ridge.config import ExperimentConfig, format_task_count, parse_task_count, run_label
from transient_ridge.llc import HALF_Z_MAX, RHAT_MAX, choose_epsilon, fit_checkpoint, half_drift_z, llc_data, split_rhat
from transient_ridge.store import open_dataset
from transient_ridge.tasks import tasks_from_dataset

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="mini")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml", help="config file holding the experiment")
    parser.add_argument("--results", type=Path, default=REPO / "results", help="the results/ folder of a pipeline run")
    parser.add_argument("--M", nargs="+", default=["inf"], help="runs (integers or inf)")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="checkpoint steps (with weights)")
    parser.add_argument("--epsilon", type=float, nargs="+", required=True)
    parser.add_argument("--gamma", type=float, default=None, help="default: the experiment's llc.gamma")
    parser.add_argument("--chains", type=int, default=None, help="default: the experiment's llc.num_chains")
    parser.add_argument("--burnin-time", type=float, default=None, help="units of 1/(eps*gamma); default: config")
    parser.add_argument("--draw-time", type=float, default=None, help="units of 1/(eps*gamma); default: config")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-seed", type=int, default=None,
                        help="with a list of train seeds: whose runs (default: the first)")
    parser.add_argument("--profile", type=float, default=None, help="units of draws of one fit with no burn-in")
    parser.add_argument("--window", type=float, default=10.0, help="window of the stationarity check (units)")
    args = parser.parse_args()
    logging.getLogger("transient_ridge").setLevel(logging.ERROR)  # the table says it all
    torch.set_num_threads(args.threads)

    block = yaml.safe_load(args.config.read_text())["experiments"][args.experiment]
    experiment = ExperimentConfig.from_dict(args.experiment, block)
    seed = experiment.seeds.calibration_seed  # the first train seed, or None without a seed axis
    if args.train_seed is not None and experiment.seeds.has_seed_axis:
        seed = args.train_seed
    cfg = experiment.for_seed(seed)
    overrides = {k: v for k, v in (("num_chains", args.chains), ("burnin_time", args.burnin_time),
                                   ("draw_time", args.draw_time), ("gamma", args.gamma)) if v is not None}
    settings = dataclasses.replace(cfg.llc, **overrides)
    results = args.results / args.experiment
    tasks = tasks_from_dataset(open_dataset(results / "data" / "tasks.zarr"))
    eps = sorted(args.epsilon)
    print(f"{args.experiment}: gamma={settings.gamma:g} nbeta={settings.nbeta:g} chains={settings.num_chains} "
          f"burn-in {settings.burnin_time:g} + draws {settings.draw_time:g} (units of 1/(eps*gamma)) "
          f"batch={settings.batch_size} n={settings.num_samples} threads={args.threads}", flush=True)
    if args.profile is not None:
        profile(args, cfg, settings, results, tasks, eps, seed)
        return
    print("| M | step | ε | steps | LLC ± s.e. | status | R̂ | half z | MALA | peak | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    points, labels, at_steps = [], [], []
    for label in args.M:
        M = parse_task_count(label)
        data = llc_data(cfg, M, tasks)
        for step in args.steps:
            model, _ = load_checkpoint(checkpoint_path(results / "runs" / run_label(M, seed) / "checkpoints", step))
            row = []
            for e in eps:
                start = time.perf_counter()
                r = fit_checkpoint(model, data, settings, seed=cfg.seeds.sgld + step, epsilon=e)
                wall = time.perf_counter() - start
                row.append(r)
                print(f"| {format_task_count(M)} | {step} | {e:g} | {r.num_burnin} + {r.num_draws} | "
                      f"{r.llc_mean:.3f} ± {r.llc_sem:.3f} | {r.status} | {r.rhat:.3f} | {r.half_z:+.2f} | "
                      f"{r.mala_acceptance:.3f} | {r.trace_peak:.2f} | {wall:.1f} |", flush=True)
            points.append(row)
            labels.append(f"M={format_task_count(M)} step {step}")
            at_steps.append(step)
    mean = np.array([[r.llc_mean for r in row] for row in points])
    sem = np.array([[r.llc_sem for r in row] for row in points])
    status = np.array([[r.status for r in row] for row in points])
    final = np.array([step == cfg.training.steps for step in at_steps])
    choice = choose_epsilon(np.array(eps), mean, sem, status, final, labels)
    print(f"\ncalibration rule on these points: epsilon = {choice.epsilon:g} "
          f"({'satisfied' if choice.rule_satisfied else 'not satisfied'}): {choice.reason}")
    if not math.isnan(choice.epsilon):
        print("eligible points:", [lab for lab, ok in zip(labels, choice.eligible) if ok])


def profile(args, cfg, settings, results, tasks, eps, seed) -> None:
    """How one long fit with no burn-in settles, and the diagnostics on its stationary windows."""
    for label in args.M:
        M = parse_task_count(label)
        data = llc_data(cfg, M, tasks)
        for step in args.steps:
            model, _ = load_checkpoint(checkpoint_path(results / "runs" / run_label(M, seed) / "checkpoints", step))
            for e in eps:
                long = dataclasses.replace(settings, burnin_time=1e-9, draw_time=args.profile)
                r = fit_checkpoint(model, data, long, seed=cfg.seeds.sgld + step, epsilon=e)
                trace = r.loss_trace[:, r.num_burnin:]
                per_unit = 1.0 / (e * settings.gamma)
                print(f"\nM={label} step {step} eps={e:g}: {r.num_draws} draws x {settings.num_chains} chains, "
                      f"{r.elapsed_s:.0f} s")
                print("| unit of 1/(εγ) | λ̂ over the unit (mean ± s.e. over chains) |\n| --- | --- |")
                for u in range(int(args.profile)):
                    seg = settings.nbeta * (trace[:, int(u * per_unit):int((u + 1) * per_unit)].mean(axis=1) - r.init_loss)
                    print(f"| {u}–{u + 1} | {seg.mean():.3f} ± {seg.std(ddof=1) / math.sqrt(len(seg)):.3f} |")
                zs, rhats = [], []
                for start in np.arange(5.0, args.profile - args.window + 1e-9, args.window / 4):
                    window = trace[:, int(start * per_unit):int((start + args.window) * per_unit)]
                    for group in range(0, settings.num_chains - 3, 4):
                        zs.append(float(half_drift_z(window[group:group + 4])))
                        rhats.append(float(split_rhat(window[group:group + 4])))
                zs, rhats = np.array(zs), np.array(rhats)
                if zs.size:
                    print(f"stationary windows of {args.window:g} units: {zs.size}; half z sd {zs.std():.2f}, max |z| "
                          f"{np.abs(zs).max():.2f}, |z| > {HALF_Z_MAX:g}: {np.mean(np.abs(zs) > HALF_Z_MAX):.3f}; "
                          f"R-hat max {rhats.max():.3f}, > {RHAT_MAX:g}: {np.mean(rhats > RHAT_MAX):.3f}")


if __name__ == "__main__":
    main()
