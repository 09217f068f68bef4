"""Disk, memory and wall-time budget of an experiment, computed from its config alone.

    python -m transient_ridge.budget paper            # or any experiment in config.yaml
    python -m transient_ridge.budget paper --config my.yaml
    python -m transient_ridge.budget paper_slice --train-steps-per-s 190 --chain-steps-per-s 224

Sizes are uncompressed (zarr's default compressor gains little on float noise),
so they are upper bounds on what `results/{exp}/` will hold.

Wall times are DERIVED, not measured: step counts from the config divided by
step rates you pass in (measure them with `python benchmarks/gpu_check.py`),
scheduled on the GPUs the way the DAG allows (one `train` job per M, one
`llc_run` per M after its training, one `llc_calibration` after the training of
its runs, which every `llc_run` also waits for when `llc.epsilon` is `auto`; each
job holds one GPU), plus assumed start-up and CPU-stage overheads.
"""

from __future__ import annotations

import argparse
import heapq
from dataclasses import dataclass

from .config import AUTO, ExperimentConfig, LLCConfig, load_yaml
from .llc import calibration_settings, calibration_steps, llc_steps
from .model import InContextRegressionTransformer
from .schedule import checkpoint_steps, weight_steps
from .train import model_config_for

__all__ = ["Budget", "estimate_budget", "WallTime", "run_epsilon", "llc_chain_steps", "calibration_chain_steps", "estimate_wall_time", "main"]

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
    runs = len(cfg.runs())  # one per M and train seed
    n_M = len(cfg.data.M)  # the task data and baselines are per M, shared by the seeds
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
        llc_per_run=len(llc_steps(cfg)) * llc.num_chains * (sum(llc.chain_length(run_epsilon(llc))) + 1) * FLOAT64,
        resume_state_per_run=3 * parameters * FLOAT32,
        tasks=cfg.data.max_finite_M * D * FLOAT64 + (B + n_ood + n_M * n_id) * K * (D + 1) * FLOAT32,
        baselines=(1 + n_M) * (B + n_ood + n_M * n_id) * K * FLOAT64,
        pca_store=runs * S * cfg.pca.n_components * FLOAT64 + (cfg.pca.n_components + 1) * B * K * FLOAT64,
        # stacked float32 rows, plus the centred copy the SVD works on
        pca_peak_memory=2 * runs * S * B * K * FLOAT32,
        dmmse_peak_memory=4 * max(B, n_ood, n_id) * K * min(cfg.probes.dmmse_chunk, cfg.data.max_finite_M) * FLOAT64,
    )


@dataclass(frozen=True)
class WallTime:
    """Derived wall time of an experiment's GPU jobs (seconds), and the counts behind it.

    ``train_job_s`` / ``llc_job_s``: one run's training / LLC job; ``calibration_job_s``:
    the calibration job; ``gpu_work_s``: all GPU jobs back to back; ``makespan_s``: the
    GPU jobs scheduled on ``gpus`` GPUs; ``total_s``: makespan plus ``cpu_overhead_s``.
    """

    gpus: int
    runs: int
    train_steps: int
    llc_chain_steps_per_run: int
    calibration_chain_steps: int
    train_job_s: float
    llc_job_s: float
    calibration_job_s: float
    gpu_work_s: float
    makespan_s: float
    cpu_overhead_s: float

    @property
    def total_s(self) -> float:
        return self.makespan_s + self.cpu_overhead_s


def run_epsilon(llc: LLCConfig) -> float:
    """The ε an ``llc_run`` is budgeted at: ``llc.epsilon``, or with ``auto`` the second-smallest grid value.

    The rule accepts nothing below the second-smallest ε (the smallest has no
    neighbour to agree with), so with ``auto`` this is the longest chain a satisfied
    rule can give (chains are sized in SGLD time: smaller ε, more steps).
    """
    if llc.epsilon != AUTO:
        return float(llc.epsilon)
    grid = sorted(llc.calibration.epsilon)
    return grid[1] if len(grid) > 1 else grid[0]


def llc_chain_steps(cfg: ExperimentConfig) -> int:
    """SGLD chain-steps of one run's ``llc_run``: checkpoints x chains x (burn-in + draws x steps between)."""
    return len(llc_steps(cfg)) * _chain_steps_per_estimate(cfg.llc, run_epsilon(cfg.llc), cfg.llc.gamma)


def _chain_steps_per_estimate(llc: LLCConfig, epsilon: float, gamma: float) -> int:
    """SGLD chain-steps of one estimate at ε, γ: chains x (burn-in + draws x steps between draws)."""
    burnin, draws = llc.chain_length(epsilon, gamma)
    return llc.num_chains * (burnin + draws * llc.steps_between_draws)


def calibration_chain_steps(cfg: ExperimentConfig) -> int:
    """SGLD chain-steps of the ``llc_calibration`` job (0 without an ``llc.calibration`` grid).

    One estimate per calibration run x calibration checkpoint
    (:func:`~transient_ridge.llc.calibration_steps`) x ε x γ, each with the
    calibration's own chains (:func:`~transient_ridge.llc.calibration_settings`),
    sized in SGLD time (more steps at smaller ε).
    """
    grid = cfg.llc.calibration
    if grid is None:
        return 0
    settings = calibration_settings(cfg)
    per_point = sum(_chain_steps_per_estimate(settings, e, g) for e in grid.epsilon for g in grid.gamma)
    return len(grid.M) * len(calibration_steps(cfg)) * per_point


def _makespan(jobs: list[tuple[float, list[int]]], gpus: int) -> float:
    """Greedy list schedule of ``(seconds, dependencies)`` jobs on ``gpus`` identical GPUs.

    A free GPU takes the ready job that comes first in ``jobs`` (the order is the
    priority); returns when the last job ends.
    """
    finish: dict[int, float] = {}
    free = [0.0] * gpus
    pending = list(range(len(jobs)))
    while pending:
        start = heapq.heappop(free)
        # dependencies come earlier in ``jobs``, so the first pending job is always ready
        ready = [j for j in pending if all(d in finish for d in jobs[j][1])]
        candidates = [(max(start, max((finish[d] for d in jobs[j][1]), default=0.0)), j) for j in ready]
        begin, job = min(candidates, key=lambda c: (c[0], c[1]))
        finish[job] = begin + jobs[job][0]
        pending.remove(job)
        heapq.heappush(free, finish[job])
    return max(finish.values(), default=0.0)


def estimate_wall_time(
    cfg: ExperimentConfig,
    *,
    train_steps_per_s: float,
    chain_steps_per_s: float,
    gpus: int = 1,
    job_startup_s: float = 10.0,
    cpu_overhead_s: float = 60.0,
) -> WallTime:
    """Derived wall time of ``cfg`` on ``gpus`` GPUs from measured step rates.

    Args:
        train_steps_per_s: training steps/s of one ``train`` job (checkpoint predictions included).
        chain_steps_per_s: SGLD chain-steps/s of the batched chains at ``llc.batch_size``
            (all chains together: 8 chains x 100 steps in 1 s is 800).
        job_startup_s: per GPU job (Python, torch and CUDA start-up, loading stores): assumed.
        cpu_overhead_s: the CPU stages (tasks, baselines, evaluate, PCA, figures, claims)
            and Snakemake itself, added once: assumed.
    """
    if train_steps_per_s <= 0 or chain_steps_per_s <= 0 or gpus < 1:
        raise ValueError(
            f"need positive rates and gpus >= 1; got train {train_steps_per_s}, chain {chain_steps_per_s}, gpus {gpus}"
        )
    run_list = cfg.runs()  # (M, train seed), M-major
    runs = len(run_list)
    per_run_chain_steps = llc_chain_steps(cfg)
    calibration_steps = calibration_chain_steps(cfg)
    train_s = job_startup_s + cfg.training.steps / train_steps_per_s
    llc_s = job_startup_s + per_run_chain_steps / chain_steps_per_s
    calibration_s = job_startup_s + calibration_steps / chain_steps_per_s if calibration_steps else 0.0
    # priority: every training first (the DAG's long pole), then the calibration, then the LLC runs
    jobs: list[tuple[float, list[int]]] = [(train_s, []) for _ in range(runs)]
    llc_waits_for = []
    if calibration_steps:
        first_seed = run_list[0][1]  # the calibration measures the runs of the first train seed
        jobs.append((calibration_s, [run_list.index((M, first_seed)) for M in cfg.llc.calibration.M]))
        if cfg.llc.epsilon == AUTO:
            llc_waits_for = [runs]
    jobs.extend((llc_s, [i, *llc_waits_for]) for i in range(runs))
    return WallTime(
        gpus=gpus,
        runs=runs,
        train_steps=cfg.training.steps,
        llc_chain_steps_per_run=per_run_chain_steps,
        calibration_chain_steps=calibration_steps,
        train_job_s=train_s,
        llc_job_s=llc_s,
        calibration_job_s=calibration_s,
        gpu_work_s=runs * (train_s + llc_s) + calibration_s,
        makespan_s=_makespan(jobs, gpus),
        cpu_overhead_s=cpu_overhead_s,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _print_wall_time(cfg: ExperimentConfig, args: argparse.Namespace) -> None:
    print(f"wall time, DERIVED (not measured) from {args.train_steps_per_s:g} training steps/s and "
          f"{args.chain_steps_per_s:g} SGLD chain-steps/s at SGLD batch {cfg.llc.batch_size}:")
    for gpus in args.gpus:
        t = estimate_wall_time(
            cfg,
            train_steps_per_s=args.train_steps_per_s,
            chain_steps_per_s=args.chain_steps_per_s,
            gpus=gpus,
            job_startup_s=args.job_startup_s,
            cpu_overhead_s=args.cpu_overhead_s,
        )
        if gpus == args.gpus[0]:
            calibration = "every llc_run waits for it" if cfg.llc.epsilon == AUTO else "explicit epsilon: runs alongside"
            print(f"  per run: train {t.train_steps:,} steps = {_duration(t.train_job_s)}, "
                  f"LLC {t.llc_chain_steps_per_run:,} chain-steps = {_duration(t.llc_job_s)}; "
                  f"calibration {t.calibration_chain_steps:,} chain-steps = {_duration(t.calibration_job_s)} ({calibration})")
            print(f"  all GPU jobs back to back: {_duration(t.gpu_work_s)} "
                  f"(incl. {args.job_startup_s:g} s start-up per job, assumed)")
        print(f"  on {gpus} GPU(s): {_duration(t.makespan_s)} of GPU jobs + {args.cpu_overhead_s:g} s CPU stages "
              f"(assumed) = {_duration(t.total_s)}")


def _gb(n: int) -> str:
    return f"{n / 1e9:8.2f} GB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--limit-gb", type=float, default=60.0, help="disk budget to check against")
    parser.add_argument("--train-steps-per-s", type=float, default=None,
                        help="measured training steps/s of one train job: prints the derived wall time")
    parser.add_argument("--chain-steps-per-s", type=float, default=None,
                        help="measured SGLD chain-steps/s (all chains together) at the experiment's llc.batch_size")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1], help="GPU counts to derive the wall time for")
    parser.add_argument("--job-startup-s", type=float, default=10.0, help="assumed start-up per GPU job")
    parser.add_argument("--cpu-overhead-s", type=float, default=60.0, help="assumed time of the CPU stages")
    args = parser.parse_args(argv)
    if (args.train_steps_per_s is None) != (args.chain_steps_per_s is None):
        parser.error("give both --train-steps-per-s and --chain-steps-per-s (or neither)")
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
    if args.train_steps_per_s is not None:
        _print_wall_time(cfg, args)


if __name__ == "__main__":
    main()
