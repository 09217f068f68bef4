"""The ε calibration on the paper model, with chains sized in SGLD time: which ε settles, which diverges, at what cost.

    python benchmarks/llc_paper_epsilon.py                                    # on a GPU: ~5 min
    python benchmarks/llc_paper_epsilon.py --M 64 inf --at 2000 4000 --epsilon 1e-5 3e-5 1e-4 3e-4
    python benchmarks/llc_paper_epsilon.py --smoke                            # tiny, CPU, seconds (a test)

Trains the ``paper_slice`` experiment's model and data (2 layers, d_model 512, d_mlp
256, 4 heads, D = 8, K = 16, σ² = 0.125; 2.66 M parameters) for each M with the
pipeline's own pieces (``init_model``, ``sample_batch`` with the experiment's seeds,
its one-cycle ``learning_rate`` schedule, ``train_step``), keeps the weights at the
``--at`` steps, and at each of them runs the pipeline's ``llc.fit_checkpoint`` for
every ε of the grid on the experiment's LLC sequences (``llc.llc_data``: n fresh
``q_M`` sequences), with the calibration's chain count and the burn-in and draws given
in units of 1/(εγ) steps. Prints a Markdown table (chain length, λ̂ ± s.e., status,
split R̂, half-drift z, MALA acceptance, trace peak, wall s) and what the calibration
rule (``llc.choose_epsilon``) chooses from these points. Nothing is written to disk
except ``--out`` (the table) when given.
"""

from __future__ import annotations

import argparse
import logging
import copy
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transient_ridge.config import ExperimentConfig, format_task_count, parse_task_count  # noqa: E402
from transient_ridge.data import draw_task_sequence, sample_batch, task_set  # noqa: E402
from transient_ridge.llc import choose_epsilon, fit_checkpoint, llc_data  # noqa: E402
from transient_ridge.schedule import learning_rate  # noqa: E402
from transient_ridge.train import init_model, train_step  # noqa: E402

SMOKE = {"data": {"D": 2, "K": 4}, "model": {"n_layer": 1, "d_model": 8, "n_head": 2, "d_mlp": 16},
         "training": {"steps": 40, "batch_size": 8}, "llc": {"num_samples": 64, "batch_size": 16}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="paper_slice")
    parser.add_argument("--M", nargs="+", default=["64", "inf"])
    parser.add_argument("--at", type=int, nargs="+", default=[2000, 4000], help="training steps to estimate at")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[1e-5, 3e-5, 1e-4, 3e-4])
    parser.add_argument("--chains", type=int, default=None, help="default: llc.calibration.num_chains")
    parser.add_argument("--burnin-time", type=float, default=None, help="units of 1/(eps*gamma); default: config")
    parser.add_argument("--draw-time", type=float, default=None, help="units of 1/(eps*gamma); default: config")
    parser.add_argument("--batch-size", type=int, default=None, help="SGLD minibatch; default: llc.batch_size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    parser.add_argument("--smoke", action="store_true", help="a tiny model and data, CPU, seconds")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    logging.getLogger("transient_ridge").setLevel(logging.ERROR)  # the table says it all
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")

    block = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text())["experiments"][args.experiment])
    if args.smoke:
        for section, values in SMOKE.items():
            block[section].update(values)
        args.at = [a for a in args.at if a <= 40] or [20, 40]
    steps = max(args.at)
    block["training"]["steps"] = steps  # the schedule of a run of that length, as paper_slice has
    cfg = ExperimentConfig.from_dict(args.experiment, block)
    grid = cfg.llc.calibration
    overrides = {k: v for k, v in (("num_chains", args.chains or grid.num_chains), ("burnin_time", args.burnin_time),
                                   ("draw_time", args.draw_time), ("batch_size", args.batch_size)) if v is not None}
    settings = dataclasses.replace(cfg.llc, **overrides)
    eps = sorted(args.epsilon)
    lines = [
        f"{args.experiment} model on {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
        f"trained {steps} steps; gamma={settings.gamma:g} nbeta={settings.nbeta:g} chains={settings.num_chains} "
        f"burn-in {settings.burnin_time:g} + draws {settings.draw_time:g} x 1/(eps*gamma) steps, SGLD batch "
        f"{settings.batch_size}, n={settings.num_samples}",
        "",
        "| M | step | train loss | ε | steps | LLC ± s.e. | status | R̂ | half z | MALA | peak | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(lines), flush=True)
    tasks = draw_task_sequence(cfg.seeds.tasks, cfg.data.max_finite_M, cfg.data.D)
    points, labels, finals = [], [], []
    for label in args.M:
        M = parse_task_count(label)
        run = cfg.for_run(M) if M in cfg.data.M else dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, M=(M,)))
        model = init_model(run, M).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.training.lr, betas=cfg.training.betas)
        t_M = task_set(tasks, M)
        t_M = None if t_M is None else torch.as_tensor(t_M, dtype=torch.float32, device=device)
        x, y = llc_data(cfg, M, tasks)
        data = (x.to(device), y.to(device))
        start, loss = time.perf_counter(), torch.tensor(math.nan)
        for step in range(steps + 1):
            if step in args.at:
                model.eval()
                row = {}
                # Largest ε first: a diverging ε shows within a minute, and the candidate ε
                # is measured before its (3x longer) smaller neighbour.
                for e in reversed(eps):
                    began = time.perf_counter()
                    r = fit_checkpoint(copy.deepcopy(model), data, settings, seed=cfg.seeds.sgld + step, epsilon=e)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    wall = time.perf_counter() - began
                    row[e] = r
                    line = (f"| {format_task_count(M)} | {step} | {float(loss):.4f} | {e:g} | {r.num_burnin} + "
                            f"{r.num_draws} | {r.llc_mean:.2f} ± {r.llc_sem:.2f} | {r.status} | {r.rhat:.3f} | "
                            f"{r.half_z:+.2f} | {r.mala_acceptance:.3f} | {r.trace_peak:.2f} | {wall:.1f} |")
                    lines.append(line)
                    print(line, flush=True)
                points.append([row[e] for e in eps])
                labels.append(f"M={format_task_count(M)} step {step}")
                finals.append(step == steps)
                model.train()
            if step == steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, cfg.training.lr, cfg.training.schedule)
            bx, by = sample_batch(t_M, seed=cfg.seeds.train, step=step, batch_size=cfg.training.batch_size,
                                  K=cfg.data.K, D=cfg.data.D, noise_variance=cfg.data.noise_variance, device=device)
            loss = train_step(model, optimizer, bx, by).detach()
        print(f"M={label}: {steps} training steps and its fits in {time.perf_counter() - start:.0f} s", flush=True)
    mean = np.array([[r.llc_mean for r in row] for row in points])
    sem = np.array([[r.llc_sem for r in row] for row in points])
    status = np.array([[r.status for r in row] for row in points])
    choice = choose_epsilon(np.array(eps), mean, sem, status, np.array(finals), labels)
    verdict = "satisfied" if choice.rule_satisfied else "NOT satisfied"
    lines += ["", f"calibration rule on these points: epsilon = {choice.epsilon:g} ({verdict}): {choice.reason}"]
    print(lines[-1], flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
    if math.isnan(choice.epsilon):
        print("every epsilon failed", flush=True)


if __name__ == "__main__":
    main()
