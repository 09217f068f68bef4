"""Benchmark: what the predictor-family fit adds to the evaluate and baselines jobs of a finished experiment.

    python benchmarks/bench_family_fit.py                    # mini, from results/mini
    python benchmarks/bench_family_fit.py --experiment transient --repeats 1

Reads the experiment's stores (predictions, tasks, baselines: nothing is trained) and
times, per run, in this process and on one BLAS thread (as Snakemake runs a one-thread
job): ``build_outputs_dataset`` without the family grid (the reference) and with it, and
writing each result; then the baselines with and without the ridge_λ path of the PCA.
CPU seconds (``time.process_time``), best of ``--repeats``. Prints each run's ratio to
the reference and the core-seconds the fit adds to the experiment.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy loads: one thread, as in a threads=1 job

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from transient_ridge.baselines import build_baselines_dataset  # noqa: E402
from transient_ridge.config import ExperimentConfig, load_yaml  # noqa: E402
from transient_ridge.evaluate import build_outputs_dataset  # noqa: E402
from transient_ridge.families import FamilyGrid  # noqa: E402
from transient_ridge.store import open_dataset, write_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best CPU time of ``repeats`` calls and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        result = fn()
        best = min(best, time.process_time() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="mini")
    parser.add_argument("--results", type=Path, default=REPO / "results", help="folder holding results/<experiment>")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = ExperimentConfig.from_config(load_yaml(REPO / "config.yaml"), args.experiment)
    grid = FamilyGrid.from_config(cfg.families, cfg.data.noise_variance)
    root = args.results / args.experiment
    tasks, baselines = open_dataset(root / "data" / "tasks.zarr"), open_dataset(root / "baselines.zarr")
    print(f"{args.experiment}: {len(grid.penalties)} ridge_λ and {len(grid.step_sizes) * len(grid.steps)} GD-k members, "
          f"CPU seconds, best of {args.repeats}, one BLAS thread")
    print(f"{'run':<10} {'steps':>5} {'build':>7} {'+fit':>7} {'ratio':>6} {'write':>7} {'+fit':>7}")
    added = 0.0
    scratch = Path(tempfile.mkdtemp(prefix="bench_family_fit_"))
    for run in cfg.run_labels():
        predictions = open_dataset(root / "runs" / run / "predictions.zarr")
        plain_s, plain = cpu_seconds(lambda: build_outputs_dataset(predictions, tasks, baselines), args.repeats)
        fit_s, fitted = cpu_seconds(lambda: build_outputs_dataset(predictions, tasks, baselines, grid), args.repeats)
        write_plain, _ = cpu_seconds(lambda: write_dataset(plain, scratch / "plain.zarr"), args.repeats)
        write_fit, _ = cpu_seconds(lambda: write_dataset(fitted, scratch / "fit.zarr"), args.repeats)
        added += (fit_s - plain_s) + (write_fit - write_plain)
        print(f"{run:<10} {predictions.sizes['step']:>5} {plain_s:>7.3f} {fit_s:>7.3f} {fit_s / plain_s:>5.1f}x "
              f"{write_plain:>7.3f} {write_fit:>7.3f}")
    chunk = cfg.probes.dmmse_chunk
    base_s, _ = cpu_seconds(lambda: build_baselines_dataset(tasks, chunk_size=chunk), args.repeats)
    path_s, _ = cpu_seconds(
        lambda: build_baselines_dataset(tasks, chunk_size=chunk, ridge_penalties=grid.penalties), args.repeats
    )
    added += path_s - base_s
    print(f"baselines: {base_s:.3f} s, with the ridge_λ path {path_s:.3f} s")
    print(f"the family fit adds {added:.2f} core-seconds to {args.experiment} ({len(cfg.run_labels())} evaluate jobs "
          "and baselines; the PCA's projection of the path is one matrix product)")


if __name__ == "__main__":
    main()
