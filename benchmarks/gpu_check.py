"""What this machine gives the pipeline: one command, one report (gpu_check.md).

    python benchmarks/gpu_check.py                      # on a GPU: about 8 minutes, paper shape
    python benchmarks/gpu_check.py --smoke              # tiny shape on the CPU, under a minute (a test)
    python benchmarks/gpu_check.py --out OUT/gpu_check.md --skip compile slice

Sections, in order (each one a child process under its own time limit, so a
slow or hanging part is cut off and reported as "timed out after N s" while
the rest still runs; the whole run keeps within --budget-s). Children are
forked from a parent that has imported torch but never touched CUDA, so they
start in milliseconds and each initialises its own CUDA context.

1. environment: device, torch / CUDA / cuDNN versions, the float32 matmul
   precision settings in force and which TF32 API this torch has (on a GPU: a
   matmul checked to see that TF32 really takes effect).
2. steps: the paper-shape training step (the pipeline's own ``train_step`` on
   ``sample_batch`` batches) in fp32, TF32, bf16 autocast, as a CUDA graph, and
   as a vmapped ensemble; then torch.compile; then N processes sharing the device.
3. profile: torch.profiler's top kernels by device time (CUDA time on a GPU,
   CPU time on a CPU) for one fp32 step and one bf16 step.
4. llc: the pipeline's batched SGLD chains against devinterp (when importable).
5. slice: ``snakemake paper_slice`` in a temporary directory, its wall time,
   per-rule times and claims; next to it the time ``transient_ridge.budget``
   derives from the rates measured above. ``--smoke`` plans it (dry run) only:
   a tiny end-to-end run spends minutes in per-job start-up on two CPU cores.

Rates are model-steps/s (chain-steps/s for SGLD: all chains together), timed
between device synchronisations after a warm-up; ratios are against the eager
fp32 step measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# (part, time limit on a GPU, time limit in --smoke), in the order they run
PARTS = (
    ("environment", 60, 20),
    ("steps", 75, 25),
    ("profile", 45, 20),
    ("llc", 75, 20),
    ("sharing", 45, 20),
    ("slice", 330, 15),
    ("compile", 60, 20),  # after the slice: it gets what the slice leaves (it was measured before: 1.08x)
)
SHARING_PROCESSES = 4  # 2 in --smoke


# ----------------------------------------------------------------------------- shapes and steps


def _shape(smoke: bool):
    """(model config, batch size, steps to time) at the paper shape, or tiny for --smoke."""
    from transient_ridge.config import ExperimentConfig, load_yaml
    from transient_ridge.model import ModelConfig
    from transient_ridge.train import model_config_for

    if smoke:
        return ModelConfig(D=2, K=4, n_layer=1, d_model=8, n_head=2, d_mlp=16), 8, 10
    paper = ExperimentConfig.from_config(load_yaml(REPO / "config.yaml"), "paper")
    return model_config_for(paper), paper.training.batch_size, 300


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


class _Step:
    """A model, fused Adam on CUDA and the pipeline's batches: ``step(i)`` runs training step ``i``."""

    def __init__(self, config, batch_size, device, autocast=None, compile_model=False):
        import contextlib

        import torch

        from transient_ridge.data import draw_task_sequence, sample_batch
        from transient_ridge.model import InContextRegressionTransformer
        from transient_ridge.train import train_step

        torch.manual_seed(0)
        self.model = InContextRegressionTransformer(config).to(device)
        fused = {"fused": True} if device.type == "cuda" else {}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, **fused)
        self.forward = torch.compile(self.model) if compile_model else self.model
        tasks = torch.as_tensor(draw_task_sequence(0, 64, config.D), dtype=torch.float32, device=device)
        self.batch = lambda i: sample_batch(tasks, seed=1, step=i, batch_size=batch_size, K=config.K, D=config.D,
                                            noise_variance=0.125, device=device)
        self.autocast = autocast or contextlib.nullcontext
        self._train_step = train_step

    def __call__(self, i: int):
        x, y = self.batch(i)
        return self._train_step(self.forward, self.optimizer, x, y, self.autocast)


def _rate(step, steps: int, device, warmup: int = 5) -> float:
    """Calls of ``step`` per second, between synchronisations, after ``warmup`` calls."""
    for i in range(warmup):
        step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    _sync(device)
    return steps / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- parts (run in a subprocess)


def part_environment(smoke: bool, emit) -> None:
    import torch

    from transient_ridge.precision import fp32_matmul, precision_settings, tf32_api

    device = _device()
    emit(kind="fact", name="device", value=torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch thread(s))")
    emit(kind="fact", name="python", value=platform.python_version())
    emit(kind="fact", name="torch", value=torch.__version__)
    emit(kind="fact", name="CUDA (torch built with)", value=str(torch.version.cuda))
    emit(kind="fact", name="cuDNN", value=str(torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None))
    emit(kind="fact", name="GPUs visible", value=str(torch.cuda.device_count()))
    emit(kind="fact", name="TF32 switch this torch has", value=tf32_api())
    for key, value in precision_settings().items():
        emit(kind="fact", name=f"in force: {key}", value=value)
    if device.type != "cuda":
        emit(kind="skip", name="TF32 takes effect", reason="no CUDA device: TF32 exists only on NVIDIA GPUs (Ampere and later)")
        return
    a = torch.randn(4096, 4096, device=device)
    reference = (a.double() @ a.double()).float()
    results = {}
    for label, tf32 in (("ieee", False), ("tf32", True)):
        with fp32_matmul(tf32):
            a @ a
            _sync(device)
            start = time.perf_counter()
            for _ in range(10):
                product = a @ a
            _sync(device)
            seconds = (time.perf_counter() - start) / 10
        error = float((product - reference).abs().max() / reference.abs().max())
        results[label] = (seconds, error)
        emit(kind="fact", name=f"4096^2 matmul, {label}", value=f"{2 * 4096**3 / seconds / 1e12:.1f} TFLOP/s, max rel. error {error:.1e}")
    effect = results["tf32"][1] > 10 * max(results["ieee"][1], 1e-9)
    emit(kind="fact", name="TF32 takes effect", value=f"{'yes' if effect else 'NO'} (through {tf32_api()}: "
         f"{results['ieee'][0] / results['tf32'][0]:.1f}x the IEEE speed)")


def part_steps(smoke: bool, emit) -> None:
    import torch

    from transient_ridge.model import count_parameters
    from transient_ridge.precision import training_precision

    device = _device()
    config, batch, steps = _shape(smoke)
    emit(kind="fact", name="shape", value=f"{config}, batch {batch}, "
         f"{count_parameters(_Step(config, batch, device).model):,} parameters")
    for label, precision in (("eager fp32", "fp32"), ("eager TF32", "tf32"), ("eager bf16 autocast", "bf16")):
        note = "no TF32 on a CPU: the same computation as fp32" if precision == "tf32" and device.type == "cpu" else ""
        with training_precision(precision, device) as autocast:
            emit(kind="rate", name=label, value=_rate(_Step(config, batch, device, autocast), steps, device), extra=note)
    # which attention kernel runs matters: fp32 cannot use flash attention, bf16 can
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):
        emit(kind="rate", name="eager fp32, math attention (no fused SDPA kernel)",
             value=_rate(_Step(config, batch, device), steps, device))
    if device.type == "cuda":
        emit(kind="rate", name="CUDA graph of the whole step", value=_cuda_graph_rate(config, batch, device, steps))
    else:
        emit(kind="skip", name="CUDA graph of the whole step", reason="needs a CUDA device")
    from bench_training import ensemble_steps_per_second

    members = 2 if smoke else 8
    emit(kind="rate", name=f"vmapped ensemble of {members} (per model)",
         value=ensemble_steps_per_second(config, batch, device, max(steps // 4, 5), members, warmup=3))


def _cuda_graph_rate(config, batch, device, steps: int) -> float:
    """The whole step (forward, backward, capturable Adam) captured once and replayed; batches copied in."""
    import torch

    from transient_ridge.data import draw_task_sequence, sample_batch
    from transient_ridge.model import InContextRegressionTransformer
    from transient_ridge.train import train_step

    torch.manual_seed(0)
    model = InContextRegressionTransformer(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3, device=device), capturable=True)
    tasks = torch.as_tensor(draw_task_sequence(0, 64, config.D), dtype=torch.float32, device=device)

    def batch_at(i):
        return sample_batch(tasks, seed=1, step=i, batch_size=batch, K=config.K, D=config.D,
                            noise_variance=0.125, device=device)

    static_x, static_y = (t.clone() for t in batch_at(0))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the graph (allocations, Adam state)
        for _ in range(3):
            train_step(model, optimizer, static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        train_step(model, optimizer, static_x, static_y)

    def replay(i):
        x, y = batch_at(i)
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()

    return _rate(replay, steps, device)


def part_compile(smoke: bool, emit) -> None:
    device = _device()
    config, batch, steps = _shape(smoke)
    start = time.perf_counter()
    step = _Step(config, batch, device, compile_model=True)
    step(0)
    _sync(device)
    emit(kind="fact", name="torch.compile: first step (compilation)", value=f"{time.perf_counter() - start:.1f} s")
    emit(kind="rate", name="torch.compile (default mode)", value=_rate(step, steps, device))


def part_eager_only(smoke: bool, emit) -> None:
    """One eager fp32 rate: what each of the sharing processes measures."""
    device = _device()
    config, batch, steps = _shape(smoke)
    emit(kind="rate", name="eager fp32", value=_rate(_Step(config, batch, device), steps * 3, device))


def part_profile(smoke: bool, emit) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from transient_ridge.precision import training_precision

    device = _device()
    config, batch, _ = _shape(smoke)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    clock = "CUDA" if device.type == "cuda" else "CPU"
    warmup, profiled = (2, 1) if smoke else (10, 5)
    for precision in ("fp32", "bf16"):
        with training_precision(precision, device) as autocast:
            step = _Step(config, batch, device, autocast)
            for i in range(warmup):
                step(i)
            _sync(device)
            start = time.perf_counter()
            with profile(activities=activities) as prof:
                for i in range(profiled):
                    step(warmup + i)
                _sync(device)
            wall = (time.perf_counter() - start) / profiled
        rows = []
        for event in prof.key_averages():
            if device.type == "cuda":
                self_us = getattr(event, "self_device_time_total", None)
                if self_us is None:
                    self_us = event.self_cuda_time_total
            else:
                self_us = event.self_cpu_time_total
            if self_us > 0:
                rows.append((event.key, event.count // profiled, self_us / profiled))
        total = sum(r[2] for r in rows)
        rows.sort(key=lambda r: -r[2])
        emit(kind="profile", name=precision, clock=clock, wall_ms=wall * 1e3, busy_ms=total / 1e3,
             rows=[{"name": n, "calls": c, "us": us, "share": us / total} for n, c, us in rows[:15]])


def part_llc(smoke: bool, emit) -> None:
    import math
    import warnings

    import numpy as np
    import torch
    import torch.nn.functional as F

    from transient_ridge.llc import SGLDLearningCoefficient

    device = _device()
    config, batch, _ = _shape(smoke)
    step = _Step(config, batch, device)
    for i in range(20 if smoke else 500):  # near a minimum of the loss, where SGLD is meant to sample
        step(i)
    model = step.model.eval()
    n = 256 if smoke else 8192
    x, y = (torch.cat(t) for t in zip(*(step.batch(10_000 + i) for i in range(max(1, n // batch)))))
    settings = dict(epsilon=3e-5, gamma=300.0, nbeta=100.0, num_chains=2 if smoke else 8,
                    num_burnin=5 if smoke else 100, num_draws=10 if smoke else 200)
    emit(kind="fact", name="settings", value=f"{settings}, n = {len(y)} (model after {20 if smoke else 500} Adam steps)")
    chain_steps = settings["num_chains"] * (settings["num_burnin"] + settings["num_draws"])
    try:
        import devinterp  # noqa: F401
        from devinterp.optim.sgld import SGLD
        from devinterp.slt.sampler import estimate_learning_coeff_with_summary
    except ImportError as exc:
        SGLD = None
        emit(kind="skip", name="devinterp", reason=f"not importable ({exc}); pip install devinterp==1.3.2 to compare")
    for m in ((16,) if smoke else (64, 256)):
        # a short fit first warms up the kernels, then the timed one
        SGLDLearningCoefficient(**{**settings, "num_burnin": 2, "num_draws": 3}, batch_size=m,
                                num_samples=len(y)).fit(model, F.mse_loss, (x, y), y)
        ours = SGLDLearningCoefficient(**settings, batch_size=m, num_samples=len(y)).fit(model, F.mse_loss, (x, y), y)
        emit(kind="rate", name=f"ours, SGLD batch {m}", value=chain_steps / ours.elapsed_s_,
             extra=f"LLC {ours.llc_mean_:.2f} ± {ours.llc_sem_:.2f}, {int(ours.failed_chains_.sum())} failed chains")
        if SGLD is None or m == 256:  # devinterp at batch 256 was measured before (2.0x); it costs 20 s
            continue
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(x, y), batch_size=m, shuffle=True, generator=torch.Generator().manual_seed(0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _sync(device)
            start = time.perf_counter()
            summary = estimate_learning_coeff_with_summary(
                model, loader, evaluate=lambda module, data: F.mse_loss(module(data[0], data[1]), data[1]),
                sampling_method=SGLD,
                optimizer_kwargs=dict(lr=settings["epsilon"], localization=settings["gamma"], nbeta=settings["nbeta"]),
                num_chains=settings["num_chains"], num_draws=settings["num_draws"],
                num_burnin_steps=settings["num_burnin"], num_steps_bw_draws=1, init_loss=ours.init_loss_,
                seed=0, cores=1, device=str(device), verbose=False)
            _sync(device)
            seconds = time.perf_counter() - start
        per_chain = np.array([summary[f"llc-chain/{c}"] for c in range(settings["num_chains"])])
        emit(kind="rate", name=f"devinterp, SGLD batch {m}", value=chain_steps / seconds,
             extra=f"LLC {per_chain.mean():.2f} ± {per_chain.std(ddof=1) / math.sqrt(len(per_chain)):.2f}; "
                   f"ours is {seconds / ours.elapsed_s_:.1f}x faster")


PART_FUNCTIONS = {
    "environment": part_environment,
    "steps": part_steps,
    "compile": part_compile,
    "eager_only": part_eager_only,
    "profile": part_profile,
    "llc": part_llc,
}


# ----------------------------------------------------------------------------- the parent


class Runner:
    """Runs parts as subprocesses within one overall time budget; collects their JSON lines."""

    def __init__(self, smoke: bool, budget_s: float, workdir: Path):
        self.smoke, self.budget_s, self.workdir = smoke, budget_s, workdir
        self.started = time.monotonic()
        # imported once here, before any fork; the parent never touches CUDA (a forked child could not use it)
        import torch  # noqa: F401

        import bench_training  # noqa: F401
        import transient_ridge.llc  # noqa: F401
        import transient_ridge.train  # noqa: F401

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def start(self, part: str, name: str):
        """Fork a child running ``part``; its JSON lines go to ``name``.jsonl, its output to ``name``.log."""
        import multiprocessing

        result, log = self.workdir / f"{name}.jsonl", self.workdir / f"{name}.log"
        process = multiprocessing.get_context("fork").Process(target=_child, args=(part, self.smoke, result, log))
        process.start()
        return process, result, log

    def run(self, part: str, limit: float) -> dict:
        start = time.monotonic()
        process, result, log = self.start(part, part)
        status = _join(process, limit)
        return {"status": status, "seconds": time.monotonic() - start, "limit": limit,
                "rows": _read_rows(result), "log_tail": _tail(log)}

    def run_sharing(self, limit: float) -> dict:
        start = time.monotonic()
        count = 2 if self.smoke else SHARING_PROCESSES
        processes = [self.start("eager_only", f"sharing{i}") for i in range(count)]
        statuses = [_join(process, max(1.0, limit - (time.monotonic() - start))) for process, _, _ in processes]
        rows = []
        for i, (_, result, _) in enumerate(processes):
            rows += [{**row, "name": f"process {i + 1} of {count}"} for row in _read_rows(result)]
        status = "ok" if all(s == "ok" for s in statuses) else next(s for s in statuses if s != "ok")
        return {"status": status, "seconds": time.monotonic() - start, "limit": limit, "rows": rows,
                "log_tail": _tail(self.workdir / "sharing0.log")}


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _child(part: str, smoke: bool, result: Path, log: Path) -> None:
    """Body of a forked child: own process group (so a timeout kills its helpers too), output to ``log``."""
    os.setsid()
    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(handle, 1)
    os.dup2(handle, 2)

    def emit(**row):
        with open(result, "a") as out:
            out.write(json.dumps(row) + "\n")
        print(json.dumps(row)[:300], flush=True)

    try:
        import torch

        if not torch.cuda.is_available():
            torch.set_num_threads(1)  # CPU rates per core: comparable across parts and with N processes sharing
        PART_FUNCTIONS[part](smoke, emit)
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def _join(process, limit: float) -> str:
    """"ok", "failed (exit N)" or "timed out" (the child's whole process group is killed)."""
    import signal

    process.join(limit)
    if process.is_alive():
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.join()
        return "timed out"
    return "ok" if process.exitcode == 0 else f"failed (exit {process.exitcode})"


def _wait(process: subprocess.Popen, limit: float) -> str:
    """"ok", "failed (exit N)" or "timed out" (the whole process group is killed)."""
    import signal

    try:
        code = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return "timed out"
    return "ok" if code == 0 else f"failed (exit {code})"


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _tail(path: Path, lines: int = 8) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# ----------------------------------------------------------------------------- the slice


SMOKE_SLICE = """experiments:
  paper_slice:
    data: { D: 2, K: 4, noise_variance: 0.1, M: [1, 4, inf] }
    probes: { root_sequences: 16, ood_sequences: 32, id_sequences: 32, dmmse_chunk: 4 }
    model: { n_layer: 1, d_model: 8, n_head: 2, d_mlp: 16 }
    training: { steps: 40, batch_size: 8, log_every: 20, resume_every: 20 }
    checkpoints: { linear_interval: 10, log_count: 5, weights_every: 2 }
    evaluation: { batch_size: 64 }
    llc:
      { num_samples: 64, num_chains: 4, burnin_time: 0.05, draw_time: 0.1, batch_size: 16, num_checkpoints: 2,
        calibration: { M: [4, inf], num_chains: 4, burnin_time: 0.05, draw_time: 0.05 } }
"""


def run_slice(runner: Runner, limit: float, out_dir: Path, rates: dict) -> dict:
    """``snakemake paper_slice`` in a temporary directory (a dry run in --smoke), timed; its claims."""
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    section = {"status": "ok", "seconds": 0.0, "limit": limit, "rows": [], "log_tail": ""}
    derived = _derived_slice_time(rates, runner.smoke)
    if derived:
        section["rows"].append({"kind": "fact", "name": "derived (transient_ridge.budget, this run's rates)", "value": derived})
    try:
        import zarr  # noqa: F401
    except ImportError as exc:
        section.update(status="skipped", reason=f"zarr not importable ({exc}): install the workflow stack (benchmarks/gpu_run.sh)")
        return section
    if not Path(snakemake).exists():
        section.update(status="skipped", reason="snakemake not found on PATH: install the workflow stack (benchmarks/gpu_run.sh)")
        return section
    workdir = runner.workdir / "slice"
    workdir.mkdir(exist_ok=True)
    configfiles = [str(REPO / "config.yaml")]
    if runner.smoke:
        (runner.workdir / "smoke_slice.yaml").write_text(SMOKE_SLICE)
        configfiles.append(str(runner.workdir / "smoke_slice.yaml"))
    cores = str(min(16, os.cpu_count() or 1))
    command = [snakemake, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "paper_slice", "-c", cores,
               "--resources", "gpu=1", "--configfile", *configfiles] + (["-n", "--quiet", "rules"] if runner.smoke else [])
    log = runner.workdir / "slice.log"
    start = time.monotonic()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=_child_env(),
                                   start_new_session=True, cwd=workdir)
        section["status"] = _wait(process, limit)
    section["seconds"] = time.monotonic() - start
    section["log_tail"] = _tail(log, 12)
    section["command"] = " ".join(["snakemake", "paper_slice", "-c", cores, "--resources", "gpu=1"])
    if runner.smoke:
        jobs = [line for line in log.read_text().splitlines() if line.strip().startswith("total")]
        section["rows"].append({"kind": "fact", "name": "dry run (--smoke: planned, not run)",
                                "value": f"{jobs[-1].split()[-1] if jobs else '?'} jobs planned in {section['seconds']:.1f} s"})
        section["smoke_note"] = ("in --smoke only planned (a dry run): a tiny paper_slice spends minutes "
                                 "in per-job start-up on two CPU cores")
        return section
    section["rows"].append({"kind": "fact", "name": "measured wall time", "value": f"{section['seconds']:.0f} s ({section['status']})"})
    results = workdir / "results" / "paper_slice"
    section["rows"] += _rule_times(results / "benchmarks")
    claims = results / "claims.json"
    if claims.exists():
        checked = json.loads(claims.read_text())
        section["claims"], section["claims_summary"] = checked["claims"], checked.get("summary", "")
        shutil.copy(results / "claims.md", out_dir / "paper_slice_claims.md")
    return section


def _rule_times(benchmarks: Path) -> list[dict]:
    """Seconds per rule, summed over its jobs, from Snakemake's benchmark files."""
    totals: dict[str, list[float]] = {}
    for path in sorted(benchmarks.rglob("*.tsv")):
        rule = path.relative_to(benchmarks).parts[0].removesuffix(".tsv")
        lines = path.read_text().splitlines()
        if len(lines) >= 2:
            totals.setdefault(rule, []).append(float(lines[1].split("\t")[0]))
    return [{"kind": "fact", "name": f"rule {rule}", "value": f"{sum(s):.1f} s over {len(s)} job(s)"}
            for rule, s in sorted(totals.items(), key=lambda item: -sum(item[1]))]


def _derived_slice_time(rates: dict, smoke: bool) -> str | None:
    """What transient_ridge.budget derives for paper_slice from this run's eager and SGLD-batch-64 rates."""
    train, chain = rates.get("eager fp32"), rates.get("ours, SGLD batch 64" if not smoke else "ours, SGLD batch 16")
    if not train or not chain:
        return None
    from transient_ridge.budget import estimate_wall_time
    from transient_ridge.config import ExperimentConfig, load_yaml

    cfg = ExperimentConfig.from_config(load_yaml(REPO / "config.yaml"), "paper_slice")
    t = estimate_wall_time(cfg, train_steps_per_s=train, chain_steps_per_s=chain)
    shape = " (tiny-shape rates applied to the paper_slice config: not meaningful)" if smoke else ""
    return f"{t.total_s:.0f} s from {train:.0f} steps/s and {chain:.0f} chain-steps/s{shape}"


# ----------------------------------------------------------------------------- the report


def render(sections: dict[str, dict], meta: dict) -> str:
    lines = [f"# gpu_check: what this machine gives the pipeline",
             "",
             f"`{meta['command']}` at {meta['when']} (project commit {meta['commit']}); "
             f"{meta['seconds']:.0f} s in all, budget {meta['budget_s']:.0f} s.",
             "Rates are model-steps/s (SGLD: chain-steps/s, all chains together), timed between device "
             "synchronisations; ratios are against the eager fp32 step of this run.", ""]
    reference = next((r["value"] for s in sections.values() for r in s.get("rows", [])
                      if r.get("kind") == "rate" and r.get("name") == "eager fp32"), None)
    shape = "the tiny --smoke shape" if meta["smoke"] else "the paper shape"
    titles = {"environment": "Environment", "steps": f"Training step at {shape}",
              "compile": "torch.compile", "sharing": "processes sharing one device, each training its own model",
              "profile": "Profile of one step (top kernels by device time)", "llc": "LLC: our batched chains against devinterp",
              "slice": "paper_slice end to end"}
    for part, section in sections.items():
        lines += [f"## {part}: {titles.get(part, part)}", ""]
        status = section["status"]
        if status == "timed out":
            lines.append(f"**timed out after {section['limit']:.0f} s** (the rows below finished before that).")
        elif status.startswith("failed"):
            lines.append(f"**{status}** after {section['seconds']:.0f} s; last lines of its log:")
            lines += ["```", section.get("log_tail", ""), "```"]
        elif status == "skipped":
            lines.append(f"**skipped**: {section['reason']}")
        else:
            lines.append(f"done in {section['seconds']:.1f} s (limit {section['limit']:.0f} s).")
        if section.get("smoke_note"):
            lines.append(f"**skipped** (end to end): {section['smoke_note']}.")
        lines.append("")
        facts = [r for r in section.get("rows", []) if r["kind"] in ("fact", "skip")]
        rates = [r for r in section.get("rows", []) if r["kind"] == "rate"]
        if facts:
            lines += ["| what | value |", "| --- | --- |"]
            for r in facts:
                value = r["value"] if r["kind"] == "fact" else f"skipped: {r['reason']}"
                lines.append(f"| {r['name']} | {value} |")
            lines.append("")
        if rates:
            lines += ["| variant | steps/s | vs eager fp32 | note |", "| --- | --- | --- | --- |"]
            for r in rates:
                ratio = f"{r['value'] / reference:.2f}x" if reference and part != "llc" else ""
                lines.append(f"| {r['name']} | {r['value']:.1f} | {ratio} | {r.get('extra', '')} |")
            if part == "sharing" and rates:
                together = sum(r["value"] for r in rates)
                lines.append(f"| all {len(rates)} together | {together:.1f} | "
                             + (f"{together / reference:.2f}x" if reference else "") + " | |")
            lines.append("")
        for r in section.get("rows", []):
            if r["kind"] == "profile":
                lines += [f"**{r['name']}**: {r['wall_ms']:.2f} ms wall per step under the profiler, "
                          f"{r['busy_ms']:.2f} ms of self {r['clock']} time per step in all operators "
                          f"(the top 15 below):", "",
                          f"| operator / kernel | calls per step | self {r['clock']} µs per step | share |",
                          "| --- | --- | --- | --- |"]
                for row in r["rows"]:
                    name = row["name"].replace("|", "\\|")[:90]
                    lines.append(f"| `{name}` | {row['calls']} | {row['us']:.1f} | {100 * row['share']:.1f} % |")
                lines.append("")
        if section.get("claims"):
            lines += [f"{section.get('claims_summary', '')} (full text: paper_slice_claims.md):", "",
                      "| claim | verdict | finding |", "| --- | --- | --- |"]
            lines += [f"| {c['name']} | {c['verdict']} | {c.get('finding', '')} |" for c in section["claims"]]
            lines.append("")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny shape, CPU-sized limits, slice as a dry run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "gpu_check.md")
    parser.add_argument("--budget-s", type=float, default=None, help="whole run (default 480 s; 55 s with --smoke)")
    parser.add_argument("--skip", nargs="*", default=[], choices=[p for p, _, _ in PARTS], help="parts to leave out")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part in this process
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.part:  # a child: run one part, one JSON line per result as soon as it exists
        def emit(**row):
            with open(args.result, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row)[:300], flush=True)

        PART_FUNCTIONS[args.part](args.smoke, emit)
        return 0

    budget = args.budget_s or (55.0 if args.smoke else 480.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sections: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        runner = Runner(args.smoke, budget, Path(tmp))
        slice_cap = next((s if args.smoke else g) for p, g, s in PARTS if p == "slice")
        for part, limit_gpu, limit_smoke in PARTS:
            cap = limit_smoke if args.smoke else limit_gpu
            if part in args.skip:
                sections[part] = {"status": "skipped", "reason": "left out with --skip", "seconds": 0, "limit": 0, "rows": []}
                continue
            if args.smoke and part == "compile":
                sections[part] = {"status": "skipped", "seconds": 0, "limit": 0, "rows": [],
                                  "reason": "in --smoke (compiling takes tens of seconds on a CPU); runs on a GPU"}
                continue
            # the parts before the slice leave it its share of the budget; the slice may use all that is left
            slice_ahead = "slice" not in sections and "slice" not in args.skip and part != "slice"
            reserve = slice_cap if slice_ahead else 0.0
            limit = runner.remaining() if part == "slice" else min(cap, runner.remaining() - reserve)
            if limit < 3:
                sections[part] = {"status": "skipped", "seconds": 0, "limit": 0, "rows": [],
                                  "reason": f"no time left in the {budget:.0f} s budget"}
                continue
            print(f"[{time.monotonic() - runner.started:5.0f} s] {part} (limit {limit:.0f} s)", flush=True)
            if part == "sharing":
                sections[part] = runner.run_sharing(limit)
            elif part == "slice":
                rates = {r["name"]: r["value"] for s in sections.values() for r in s.get("rows", []) if r.get("kind") == "rate"}
                sections[part] = run_slice(runner, limit, args.out.parent, rates)
            else:
                sections[part] = runner.run(part, limit)
            print(f"        {sections[part]['status']} in {sections[part]['seconds']:.1f} s", flush=True)
        meta = {"command": "python benchmarks/gpu_check.py" + (" --smoke" if args.smoke else ""),
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": _commit(),
                "seconds": time.monotonic() - runner.started, "budget_s": budget, "smoke": args.smoke}
    report = render(sections, meta)
    args.out.write_text(report)
    (args.out.with_suffix(".json")).write_text(json.dumps({"meta": meta, "sections": sections}, indent=1, default=str))
    print(report)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
