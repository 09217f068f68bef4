"""Explore configurations for the `transient` experiment: train, evaluate, measure transience.

    python benchmarks/explore_transient.py                                  # the `transient` block of config.yaml
    python benchmarks/explore_transient.py --set training.steps=60000 --set data.noise_variance=0.02
    python benchmarks/explore_transient.py --M 16 32 --workers 2
    python benchmarks/explore_transient.py --M 8 11 --seeds 1 2 3        # one run per M and train seed

Trains each M of the experiment (2 processes at a time, 1 thread each) into a
scratch directory with the pipeline's own functions (tasks, baselines, train,
evaluate), then prints, per M (and train seed), the transience measures that the
`claims` rule uses (approach and OOD depth included), the wall time and the
training throughput. Nothing under results/ is
touched; use this to choose values, then put them in config.yaml.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _set(block: dict, assignment: str) -> None:
    key, value = assignment.split("=", 1)
    *parents, leaf = key.split(".")
    node = block
    for part in parents:
        node = node[part]
    node[leaf] = yaml.safe_load(value)


def _train_one(args: tuple[dict, float, int | None, str]) -> dict:
    import torch

    from transient_ridge.baselines import build_baselines_dataset
    from transient_ridge.claims import measure_transience
    from transient_ridge.config import ExperimentConfig
    from transient_ridge.evaluate import build_outputs_dataset
    from transient_ridge.store import open_dataset
    from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
    from transient_ridge.train import ProbeInputs, train_run

    block, M, seed, scratch = args
    torch.set_num_threads(1)
    cfg = ExperimentConfig.from_dict("explore", block).for_seed(seed)
    tasks = build_tasks_dataset(cfg)
    baselines = build_baselines_dataset(tasks, chunk_size=cfg.probes.dmmse_chunk)
    run_dir = Path(scratch) / f"M{M}" / f"s{cfg.seeds.train}"
    start = time.perf_counter()
    train_run(cfg, M, tasks_from_dataset(tasks), ProbeInputs.from_tasks_dataset(tasks, M), run_dir)
    elapsed = time.perf_counter() - start
    outputs = build_outputs_dataset(open_dataset(run_dir / "predictions.zarr"), tasks, baselines)
    measure = measure_transience(outputs, cfg.figures.smoothing_window, baselines)
    ridge_ood = float(baselines["loss_ridge_ood"].mean())
    dmmse_ood = float(baselines["loss_dmmse_ood"].sel(M=M).mean())
    return {
        "M": M,
        "seed": cfg.seeds.train,
        "seconds": elapsed,
        "steps_per_s": cfg.training.steps / elapsed,
        "ridge_ood": ridge_ood,
        "dmmse_ood": dmmse_ood,
        "final_dist_ridge": float(outputs["dist_ridge"][-1]),
        "final_dist_dmmse": float(outputs["dist_dmmse"][-1]),
        **{k: v for k, v in measure.__dict__.items() if k != "M"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="transient")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. training.steps=20000")
    parser.add_argument("--M", nargs="*", help="M values to train (default: the experiment's grid)")
    parser.add_argument("--seeds", type=int, nargs="*", help="train seeds (default: the experiment's seeds.train)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    block = copy.deepcopy(config["experiments"][args.experiment])
    for assignment in args.set:
        _set(block, assignment)
    if args.M:
        block["data"]["M"] = [m if m == "inf" else int(m) for m in args.M]
    if args.seeds:
        block["seeds"]["train"] = args.seeds
    M_values = [math.inf if m == "inf" else float(m) for m in block["data"]["M"]]
    train = block["seeds"]["train"]
    seeds = train if isinstance(train, list) else [None]
    print(f"settings: {json.dumps({k: block[k] for k in ('data', 'model', 'training')}, default=str)}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        # largest M first: they take the same time, and results print in M order anyway
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            rows = pool.map(_train_one, [(block, M, seed, scratch) for M in M_values for seed in seeds])
    print(f"total wall time {time.perf_counter() - start:.0f} s with {args.workers} workers")
    print(
        f"{'M':>5s} {'seed':>5s} {'steps/s':>8s} {'ridge':>6s} {'dMMSE':>6s} {'OOD min (step)':>17s} {'depth':>6s} "
        f"{'OOD end':>8s} {'rise':>6s} {'d_ridge min (step)':>19s} {'approach':>8s} {'rise':>6s} {'d_dmmse end/at':>15s} "
        f"{'end d_r/d_d':>12s} transient"
    )

    def ratio(value: float | None) -> str:
        return f"{'—':>8s}" if value is None else f"{value:8.2f}"

    for r in rows:
        verdict = "yes" if r["is_transient"] else ("rises only" if r["rises"] else "no")
        print(
            f"{r['M']:5g} {r['seed']:5d} {r['steps_per_s']:8.1f} {r['ridge_ood']:6.3f} {r['dmmse_ood']:6.3f} "
            f"{r['ood_min']:8.3f} ({r['ood_min_step']:6d}) {ratio(r['ood_depth'])[2:]} {r['ood_final']:8.3f} "
            f"{r['ood_rise']:+6.1%} {r['ridge_min']:9.4f} ({r['ridge_min_step']:6d}) {ratio(r['approach'])} "
            f"{r['ridge_rise']:+6.1%} {r['dmmse_final_over_at_ood_min']:15.3f} "
            f"{r['final_dist_ridge']:.3f}/{r['final_dist_dmmse']:.3f} {verdict}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
