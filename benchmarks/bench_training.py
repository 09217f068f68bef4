"""Benchmark: training steps/s of one run, by shape, device, threads, compilation,
precision and ensembling, plus what checkpoint evaluation costs.

    python benchmarks/bench_training.py                      # mini shape, CPU, 1 and 2 threads, eager vs compile
    python benchmarks/bench_training.py --shape transient --no-compile --ensemble 4 --bf16
    python benchmarks/bench_training.py --shape paper        # paper shape (on a GPU if present)

Each variant runs the same (fused, as in the pipeline) Adam steps on batches from the (seed, step) sampler;
the printed ratio is of model-steps/s against the first variant (eager, 1
thread), measured in the same process. ``--ensemble E`` adds E models trained as
one computation (parameters stacked with ``torch.func.stack_module_state``, the
forward pass vmapped, or run by the package's ``stacked_forward``; one Adam over the
stacked tensors: Adam is elementwise, so this is E independent runs, each on its own batch); ``--bf16`` adds bfloat16
autocast (float32 master weights). ``--evaluation`` times one checkpoint's
evaluation on the experiment's probe sets (see bench_pipeline.py for the whole
pipeline).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from transient_ridge.data import draw_task_sequence, sample_batch
from transient_ridge.model import InContextRegressionTransformer, ModelConfig, count_parameters, stacked_forward

SHAPES = {
    "mini": (ModelConfig(D=2, K=8, n_layer=4, d_model=32, n_head=2, d_mlp=64), 40),  # config.yaml's mini
    "transient": (ModelConfig(D=2, K=8, n_layer=4, d_model=64, n_head=4, d_mlp=256), 32),
    "paper": (ModelConfig(D=8, K=16, n_layer=2, d_model=512, n_head=4, d_mlp=256), 256),
}


def steps_per_second(config, batch_size, device, steps, compile_model=False, warmup=20):
    torch.manual_seed(0)
    model = InContextRegressionTransformer(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    tasks = torch.randn(16, config.D, device=device)
    forward = torch.compile(model) if compile_model else model

    def step(i):
        x, y = sample_batch(tasks, seed=0, step=i, batch_size=batch_size, K=config.K, D=config.D,
                            noise_variance=0.1, device=device)
        loss = torch.mean((forward(x, y) - y) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def member_tasks(members, D, device, num_tasks=16):
    """Each member's task set ``(num_tasks, D)`` float32 on ``device``, drawn as the pipeline draws
    tasks (numpy, seed = member index), so the values do not depend on the device. Drawing
    them with a ``torch.Generator()`` made them CPU-only: on CUDA that failed ("Expected a
    'cuda' device type for generator")."""
    return [torch.as_tensor(draw_task_sequence(m, num_tasks, D), dtype=torch.float32, device=device)
            for m in range(members)]


def ensemble_steps_per_second(config, batch_size, device, steps, members, warmup=10, stacked=False):
    """Model-steps/s of ``members`` models trained as one computation: the forward pass vmapped
    over ``functional_call``, or with ``stacked`` the package's ``stacked_forward`` (every linear
    map one batched matmul over the members, the fused attention kernel kept)."""
    from torch.func import functional_call, stack_module_state

    torch.manual_seed(0)
    models = [InContextRegressionTransformer(config).to(device) for _ in range(members)]
    params, buffers = stack_module_state(models)
    optimizer = torch.optim.Adam(list(params.values()), lr=1e-3, fused=True)
    tasks = member_tasks(members, config.D, device)

    if stacked:
        def forward(p, b, x, y):
            return stacked_forward(config, p, x, y)
        kernels = contextlib.nullcontext()
    else:
        base = InContextRegressionTransformer(config).to("meta")

        def member_forward(p, b, x, y):
            return functional_call(base, (p, b), (x, y))

        forward = torch.vmap(member_forward)
        # the fused CPU attention kernels have no vmap batching rule (a slow per-member
        # fallback); the math backend is made of batchable ops, as in transient_ridge.llc
        kernels = sdpa_kernel([SDPBackend.MATH])

    def step(i):
        batches = [sample_batch(t, seed=m, step=i, batch_size=batch_size, K=config.K, D=config.D,
                                noise_variance=0.1, device=device) for m, t in enumerate(tasks)]
        x = torch.stack([b[0] for b in batches])
        y = torch.stack([b[1] for b in batches])
        # summing the members' mean losses gives each member exactly its own gradient
        loss = ((forward(params, buffers, x, y) - y) ** 2).mean(dim=(1, 2)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with kernels:
        for i in range(warmup):
            step(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            step(warmup + i)
        if device.type == "cuda":  # CUDA runs asynchronously: time the work, not its launch
            torch.cuda.synchronize()
    return members * steps / (time.perf_counter() - start)


def evaluation_seconds(config, device, sequences, batch_size, repeats=3):
    """Seconds to predict ``sequences`` probe sequences (one checkpoint's evaluation)."""
    torch.manual_seed(0)
    model = InContextRegressionTransformer(config).to(device).eval()
    x = torch.randn(sequences, config.K, config.D, device=device)
    y = torch.randn(sequences, config.K, device=device)
    with torch.no_grad():
        model(x[:batch_size], y[:batch_size])
        start = time.perf_counter()
        for _ in range(repeats):
            for chunk in range(0, sequences, batch_size):
                model(x[chunk : chunk + batch_size], y[chunk : chunk + batch_size])
        if device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mini")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--ensemble", type=int, default=0, metavar="E", help="also time E models as one vmapped and as one stacked computation")
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast")
    parser.add_argument("--evaluation", action="store_true", help="also time one checkpoint's evaluation")
    parser.add_argument("--max-threads", type=int, default=2, help="skip variants that use more threads")
    args = parser.parse_args()
    config, batch = SHAPES[args.shape]
    batch = args.batch_size or batch
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"shape {args.shape}: {config}, {count_parameters(InContextRegressionTransformer(config)):,} parameters, "
          f"batch {batch}, device {name}")
    variants = [("eager, 1 thread", 1, False), ("eager, 2 threads", 2, False)]
    if not args.no_compile:
        variants.append(("torch.compile, 1 thread", 1, True))
    runs = [(label, threads, lambda c=compiled: steps_per_second(config, batch, device, args.steps, compile_model=c))
            for label, threads, compiled in variants]
    if args.bf16:
        def bf16_rate():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return steps_per_second(config, batch, device, args.steps)
        runs.append(("bf16 autocast, 1 thread", 1, bf16_rate))
    if args.ensemble:
        for threads in (1, 2):
            runs.append((f"ensemble of {args.ensemble}, {threads} thread(s)", threads,
                         lambda: ensemble_steps_per_second(config, batch, device, args.steps // 2, args.ensemble)))
            runs.append((f"stacked ensemble of {args.ensemble}, {threads} thread(s)", threads,
                         lambda: ensemble_steps_per_second(config, batch, device, args.steps // 2, args.ensemble,
                                                           stacked=True)))
    reference = None
    for label, threads, measure in runs:
        if threads > args.max_threads:
            continue
        torch.set_num_threads(threads)
        try:
            rate = measure()
        except Exception as exc:  # compilation can fail on some stacks; report, do not hide
            print(f"{label:28s} failed: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        reference = reference or rate
        print(f"{label:28s} {rate:8.1f} model-steps/s   ratio {rate / reference:5.2f}x")
    if args.evaluation:
        torch.set_num_threads(1)
        sequences = 512 + 2048 + 2048  # root, OOD and one in-distribution probe set (transient's sizes)
        seconds = evaluation_seconds(config, device, sequences, batch_size=2048)
        print(f"evaluation of {sequences} probe sequences: {seconds:.3f} s per checkpoint, "
              f"= {seconds * reference:.0f} training steps at the first variant's rate")


if __name__ == "__main__":
    main()
