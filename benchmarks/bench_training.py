"""Benchmark: training steps/s of one run, by shape, device, threads and compilation.

    python benchmarks/bench_training.py                      # mini shape, CPU, 1 and 2 threads, eager vs compile
    python benchmarks/bench_training.py --shape paper        # paper shape (on a GPU if present)

Each variant runs the same Adam steps on batches from the (seed, step) sampler;
the printed ratio is against the first variant (eager, 1 thread), measured in
the same process. Checkpoint evaluation is not included (see bench_pipeline.py).
"""

from __future__ import annotations

import argparse
import time

import torch

from transient_ridge.data import sample_batch
from transient_ridge.model import InContextRegressionTransformer, ModelConfig, count_parameters

SHAPES = {
    "mini": (ModelConfig(D=2, K=8, n_layer=4, d_model=32, n_head=2, d_mlp=128), 64),
    "transient": (ModelConfig(D=2, K=8, n_layer=4, d_model=64, n_head=4, d_mlp=256), 32),
    "paper": (ModelConfig(D=8, K=16, n_layer=2, d_model=512, n_head=4, d_mlp=256), 256),
}


def steps_per_second(config, batch_size, device, steps, compile_model=False, warmup=20):
    torch.manual_seed(0)
    model = InContextRegressionTransformer(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if device.type == "cuda" else {}))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mini")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--no-compile", action="store_true")
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
    reference = None
    for label, threads, compiled in variants:
        torch.set_num_threads(threads)
        try:
            rate = steps_per_second(config, batch, device, args.steps, compile_model=compiled)
        except Exception as exc:  # compilation can fail on some stacks; report, do not hide
            print(f"{label:28s} failed: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        reference = reference or rate
        print(f"{label:28s} {rate:8.1f} steps/s   ratio {rate / reference:5.2f}x")


if __name__ == "__main__":
    main()
