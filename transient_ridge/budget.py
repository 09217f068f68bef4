"""Disk and memory budget of an experiment, computed from its config alone.

    python -m transient_ridge.budget paper            # or any experiment in config.yaml
    python -m transient_ridge.budget paper --config my.yaml

Sizes are uncompressed (zarr's default compressor gains little on float noise),
so they are upper bounds on what `results/{exp}/` will hold.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .config import ExperimentConfig, load_yaml
from .model import InContextRegressionTransformer
from .schedule import checkpoint_steps, weight_steps
from .train import model_config_for

__all__ = ["Budget", "estimate_budget", "main"]

FLOAT32, FLOAT64 = 4, 8


@dataclass(frozen=True)
class Budget:
    """Bytes per item of an experiment's results (and the peak memory of its largest in-memory step)."""

    runs: int
    checkpoint_steps: int
    weight_steps: int
    parameters: int
    checkpoints_per_run: int
    predictions_per_run: int
    outputs_per_run: int
    llc_per_run: int
    resume_state_per_run: int
    tasks: int
    baselines: int
    pca_store: int
    pca_peak_memory: int
    dmmse_peak_memory: int

    @property
    def total_disk(self) -> int:
        per_run = self.checkpoints_per_run + self.predictions_per_run + self.outputs_per_run + self.llc_per_run
        return self.runs * per_run + self.tasks + self.baselines + self.pca_store


def estimate_budget(cfg: ExperimentConfig) -> Budget:
    """Sizes in bytes from the config (no files are read)."""
    D, K = cfg.data.D, cfg.data.K
    runs = len(cfg.data.M)
    steps = checkpoint_steps(cfg.training.steps, cfg.checkpoints.linear_interval, cfg.checkpoints.log_count)
    kept = weight_steps(steps, cfg.checkpoints.weights_every)
    parameters = sum(p.numel() for p in InContextRegressionTransformer(model_config_for(cfg)).parameters())
    B, n_ood, n_id = cfg.probes.root_sequences, cfg.probes.ood_sequences, cfg.probes.id_sequences
    S = len(steps)
    llc = cfg.llc
    return Budget(
        runs=runs,
        checkpoint_steps=S,
        weight_steps=len(kept),
        parameters=parameters,
        checkpoints_per_run=len(kept) * parameters * FLOAT32,
        predictions_per_run=S * (B + n_ood + n_id) * K * FLOAT32,
        outputs_per_run=S * (B * K * FLOAT32 + 4 * K * FLOAT64 + 4 * FLOAT64),
        llc_per_run=llc.num_checkpoints * llc.num_chains * (llc.num_burnin + llc.num_draws + 1) * FLOAT64,
        resume_state_per_run=3 * parameters * FLOAT32,
        tasks=cfg.data.max_finite_M * D * FLOAT64 + (B + n_ood + runs * n_id) * K * (D + 1) * FLOAT32,
        baselines=(1 + runs) * (B + n_ood + runs * n_id) * K * FLOAT64,
        pca_store=runs * S * cfg.pca.n_components * FLOAT64 + (cfg.pca.n_components + 1) * B * K * FLOAT64,
        # stacked float32 rows, plus the centred copy the SVD works on
        pca_peak_memory=2 * runs * S * B * K * FLOAT32,
        dmmse_peak_memory=4 * max(B, n_ood, n_id) * K * min(cfg.probes.dmmse_chunk, cfg.data.max_finite_M) * FLOAT64,
    )


def _gb(n: int) -> str:
    return f"{n / 1e9:8.2f} GB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--limit-gb", type=float, default=60.0, help="disk budget to check against")
    args = parser.parse_args(argv)
    cfg = ExperimentConfig.from_config(load_yaml(args.config), args.experiment)
    b = estimate_budget(cfg)
    print(f"experiment {cfg.name}: {b.runs} runs, {b.checkpoint_steps} checkpoint steps, "
          f"weights kept at {b.weight_steps}, {b.parameters:,} parameters")
    rows = [
        ("checkpoints (weights), all runs", b.runs * b.checkpoints_per_run),
        ("predictions.zarr, all runs", b.runs * b.predictions_per_run),
        ("outputs.zarr, all runs", b.runs * b.outputs_per_run),
        ("llc stores, all runs", b.runs * b.llc_per_run),
        ("tasks.zarr", b.tasks),
        ("baselines.zarr", b.baselines),
        ("pca.zarr", b.pca_store),
    ]
    for label, size in rows:
        print(f"  {label:34s} {_gb(size)}")
    print(f"  {'total results/' + cfg.name:34s} {_gb(b.total_disk)}  (limit {args.limit_gb:g} GB: "
          f"{'fits' if b.total_disk <= args.limit_gb * 1e9 else 'DOES NOT FIT'})")
    print(f"  {'+ resume state while training':34s} {_gb(b.resume_state_per_run)} per concurrent run")
    print(f"peak memory: pca {_gb(b.pca_peak_memory)}, dMMSE chunk {_gb(b.dmmse_peak_memory)}")


if __name__ == "__main__":
    main()
