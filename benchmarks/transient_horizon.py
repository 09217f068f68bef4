"""Would a shorter run have shown the same transience? The claims rule's measure, cut at earlier steps.

    python benchmarks/transient_horizon.py results/transient --horizons 60000 80000 100000
    python benchmarks/transient_horizon.py results/transient --M 8 11 --json horizon.json

Training is a pure function of (seed, step) and the `warmup_constant` schedule does
not depend on the total step count, so a run cut at step T follows the same
trajectory as a run configured with `training.steps: T`. Only the log-spaced
checkpoints differ (they are spaced to the total), which moves the smoothed
minimum slightly; the numbers here are an estimate of the shorter run, not a
replacement for it. Reads each run's `outputs.zarr` (every seed's, with a seed
axis: runs/M*/s*/) and `baselines.zarr` (for the approach and OOD depth);
trains nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import xarray as xr

from transient_ridge.claims import measure_transience
from transient_ridge.config import format_task_count
from transient_ridge.store import open_dataset


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="an experiment's results folder, e.g. results/transient")
    parser.add_argument("--horizons", type=int, nargs="+", help="steps to cut at (default: 50 %%, 67 %%, 83 %%, 100 %%)")
    parser.add_argument("--M", type=float, nargs="+", help="runs to read (default: every finite M but the smallest)")
    parser.add_argument("--window", type=int, help="smoothing window (default: the experiment's figures.smoothing_window)")
    parser.add_argument("--json", type=Path, help="also write the measures here")
    args = parser.parse_args(argv)

    runs: dict[float, dict[int | None, xr.Dataset]] = {}
    paths = sorted((args.results / "runs").glob("M*/outputs.zarr")) + sorted((args.results / "runs").glob("M*/s*/outputs.zarr"))
    for path in paths:
        outputs = open_dataset(path)
        seed = int(outputs.attrs["seed"]) if path.parent.parent.name.startswith("M") else None
        runs.setdefault(float(outputs.attrs["M"]), {})[seed] = outputs
    if not runs:
        raise SystemExit(f"no runs/M*/outputs.zarr or runs/M*/s*/outputs.zarr under {args.results}")
    baselines = open_dataset(args.results / "baselines.zarr")
    finite = sorted(M for M in runs if math.isfinite(M))
    chosen = args.M or finite[1:]
    missing = [M for M in chosen if M not in runs]
    if missing:
        raise SystemExit(f"no outputs for M={missing} under {args.results} (have {sorted(runs)})")
    config = json.loads(next(iter(next(iter(runs.values())).values())).attrs["config"])
    window = args.window or int(config["figures"]["smoothing_window"])
    total = int(config["training"]["steps"])
    horizons = args.horizons or [round(total * f) for f in (0.5, 2 / 3, 5 / 6, 1.0)]

    print(f"{args.results}: {total} steps trained, series smoothed over {window} checkpoints")
    print(f"{'M':>5} {'seed':>5} {'cut at':>8} {'OOD min (step)':>18} {'depth':>6} {'rise':>7} {'d_ridge min (step)':>20} "
          f"{'approach':>8} {'rise':>7} {'d_dmmse end/at':>14} transient")  # fmt: skip
    rows = []
    for M in chosen:
        for seed, run in sorted(runs[M].items(), key=lambda item: -1 if item[0] is None else item[0]):
            for horizon in horizons:
                cut = run.sel(step=slice(None, horizon))
                m = measure_transience(cut, window, baselines)
                rows.append({"M": M, "seed": seed, "horizon": horizon, **dataclasses.asdict(m)})
                verdict = "yes" if m.is_transient else ("rises only" if m.rises else "no")
                print(
                    f"{format_task_count(M):>5} {'—' if seed is None else seed:>5} {horizon:>8} {m.ood_min:>9.3f} "
                    f"({m.ood_min_step:>6}) {_ratio(m.ood_depth):>6} {m.ood_rise:>+7.1%} {m.ridge_min:>11.4f} "
                    f"({m.ridge_min_step:>6}) {_ratio(m.approach):>8} {m.ridge_rise:>+7.1%} "
                    f"{m.dmmse_final_over_at_ood_min:>14.3f} {verdict}"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
