"""Does a faster precision change the learning curve? fp32 against TF32 / bf16, same seed, same run.

    python benchmarks/precision_curves.py --smoke                   # seconds, tiny, CPU (a test)
    python benchmarks/precision_curves.py                           # mini, 600 steps, CPU (~1 min)
    python benchmarks/precision_curves.py --experiment paper_slice --M 64 --steps 2000   # on a GPU

Trains one run (one M) with the pipeline's own ``train_run`` in fp32, in each
faster precision (bf16 autocast everywhere; TF32 only where CUDA is, since a
CPU has no TF32), and once more in fp32 with another training seed: that last
run measures seed noise. Each curve is the OOD loss (MSE on the experiment's
fixed ``q_inf`` probe set) at every checkpoint; the table gives the largest
relative difference from the fp32 curve along the whole curve, next to that of
the other-seed fp32 run. A precision "keeps the curve" when its difference is
no larger than seed noise. Writes a markdown table and a PNG of the curves.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transient_ridge.config import ExperimentConfig, format_task_count, load_yaml, parse_task_count  # noqa: E402

SMOKE_BLOCK_CHANGES = {
    "data": {"D": 2, "K": 4, "noise_variance": 0.1},
    "probes": {"root_sequences": 16, "ood_sequences": 128, "id_sequences": 32, "dmmse_chunk": 16},
    "model": {"n_layer": 1, "d_model": 16, "n_head": 2, "d_mlp": 32},
    "training": {"batch_size": 16},
    "evaluation": {"batch_size": 256},
}


def run_config(experiment: str, M: float, steps: int, precision: str, train_seed_offset: int, smoke: bool,
               config_path: Path) -> ExperimentConfig:
    """The experiment narrowed to one M, ``steps`` long, in ``precision``, checkpoints every ``steps / 30``."""
    block = copy.deepcopy(load_yaml(config_path)["experiments"][experiment])
    if smoke:
        for section, values in SMOKE_BLOCK_CHANGES.items():
            block[section] = {**block[section], **values}
    block["data"]["M"] = [format_task_count(M)]
    block["training"].update(steps=steps, precision=precision, log_every=steps, resume_every=steps)
    block["seeds"] = {**block["seeds"], "train": block["seeds"]["train"] + train_seed_offset}
    block["checkpoints"] = {"linear_interval": max(1, steps // 30), "log_count": 20, "weights_every": 10**6}
    return ExperimentConfig.from_dict(experiment, block)


def ood_curve(cfg: ExperimentConfig, M: float, device, workdir: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Train one run; return its checkpoint steps, OOD loss at each, and training steps/s (with checkpoints)."""
    from transient_ridge.store import open_dataset
    from transient_ridge.tasks import build_tasks_dataset, tasks_from_dataset
    from transient_ridge.train import ProbeInputs, train_run

    tasks = build_tasks_dataset(cfg)
    start = time.perf_counter()
    train_run(cfg, M, tasks_from_dataset(tasks), ProbeInputs.from_tasks_dataset(tasks, M), workdir, device=device)
    seconds = time.perf_counter() - start
    predictions = open_dataset(workdir / "predictions.zarr")
    loss = ((predictions["pred_ood"].values - tasks["ood_y"].values[None]) ** 2).mean(axis=(1, 2))
    return predictions["step"].values, loss, cfg.training.steps / seconds


def max_relative_difference(curve: np.ndarray, reference: np.ndarray, skip_first: int = 1) -> float:
    """``max_t |curve_t - reference_t| / reference_t`` over the checkpoints after the first ``skip_first``
    (at step 0 both are the same initial model)."""
    return float(np.max(np.abs(curve[skip_first:] - reference[skip_first:]) / reference[skip_first:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="mini")
    parser.add_argument("--M", default="16", help="task diversity of the run (an integer or inf)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 60 steps (seconds on a CPU)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "precision_curves.md")
    args = parser.parse_args(argv)

    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    steps = 60 if args.smoke else args.steps
    M = parse_task_count(args.M)
    faster = ["tf32", "bf16"] if device.type == "cuda" else ["bf16"]
    variants = [("fp32", "fp32", 0), *((p, p, 0) for p in faster), ("fp32, other training seed", "fp32", 1)]
    curves = {}
    with tempfile.TemporaryDirectory(prefix="precision_curves_") as tmp:
        # untimed warm-up (first-call costs of kernels, allocator and zarr), so the rates compare
        ood_curve(run_config(args.experiment, M, 10, "fp32", 0, args.smoke, args.config), M, device, Path(tmp) / "warm")
        for label, precision, offset in variants:
            cfg = run_config(args.experiment, M, steps, precision, offset, args.smoke, args.config)
            curves[label] = ood_curve(cfg, M, device, Path(tmp) / label.replace(" ", "_").replace(",", ""))
            print(f"{label:28s} {curves[label][2]:8.1f} steps/s, final OOD loss {curves[label][1][-1]:.4f}", flush=True)
    step, reference, reference_rate = curves["fp32"]
    noise = max_relative_difference(curves["fp32, other training seed"][1], reference)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (1 thread)"
    lines = [
        "# Learning curves by training precision",
        "",
        f"`python benchmarks/precision_curves.py {' '.join(sys.argv[1:] if argv is None else argv)}` on {name}, "
        f"torch {torch.__version__}: experiment `{args.experiment}`{' (tiny --smoke shape)' if args.smoke else ''}, "
        f"M = {format_task_count(M)}, {steps} steps, {len(step)} checkpoints; OOD loss on the fixed q_inf probe set.",
        "",
        "| run | steps/s (with checkpoints) | final OOD loss | max relative difference from fp32 along the curve | keeps the curve |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, (_, curve, rate) in curves.items():
        if label == "fp32":
            lines.append(f"| fp32 (reference) | {rate:.1f} | {curve[-1]:.4f} | 0 | |")
            continue
        difference = max_relative_difference(curve, reference)
        verdict = "(seed noise)" if label.startswith("fp32,") else ("yes" if difference <= noise else "NO")
        lines.append(f"| {label} | {rate:.1f} ({rate / reference_rate:.2f}x) | {curve[-1]:.4f} | {difference:.4f} | {verdict} |")
    lines += ["", "A faster precision keeps the curve when its difference is no larger than the other seed's.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    _plot(curves, args.out.with_suffix(".png"), f"{args.experiment}, M = {format_task_count(M)}, {name}")
    print("\n".join(lines))
    print(f"written: {args.out} and {args.out.with_suffix('.png')}")
    return 0


def _plot(curves: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    for label, (step, curve, _) in curves.items():
        axis.plot(np.maximum(step, 1), curve, label=label, linestyle="--" if "seed" in label else "-")
    axis.set_xscale("log")
    axis.set_xlabel("training step")
    axis.set_ylabel("OOD loss (MSE on q_inf probes)")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
