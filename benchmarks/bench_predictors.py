"""Benchmark: vectorized ridge / dMMSE against plain per-sequence loops (time and peak memory).

    python benchmarks/bench_predictors.py            # paper shape (D=8, K=16), M up to 2^15

Prints ratios against the loop reference measured in the same process, and the
peak memory of dMMSE at M = 2^15 over 1024 sequences (the paper's largest M).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from transient_ridge.data import draw_task_sequence, sample_sequences
from transient_ridge.predictors import dmmse_predict, ridge_predict


def ridge_loop(x, y, sigma2):
    B, K, D = x.shape
    out = np.zeros((B, K))
    for b in range(B):
        for k in range(K):
            X, Y = x[b, :k].astype(float), y[b, :k].astype(float)
            out[b, k] = x[b, k] @ np.linalg.solve(X.T @ X + sigma2 * np.eye(D), X.T @ Y)
    return out


def dmmse_loop(x, y, tasks, sigma2):
    B, K, _ = x.shape
    out = np.zeros((B, K))
    for b in range(B):
        for k in range(K):
            energy = ((y[b, :k, None] - x[b, :k] @ tasks.T) ** 2).sum(axis=0) / (2 * sigma2)
            w = np.exp(-(energy - energy.min()))
            out[b, k] = x[b, k] @ (w @ tasks) / w.sum()
    return out


def timed(fn, *args, **kwargs):
    tracemalloc.start()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, elapsed, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--D", type=int, default=8)
    parser.add_argument("--K", type=int, default=16)
    parser.add_argument("--sequences", type=int, default=1024)
    parser.add_argument("--loop-sequences", type=int, default=64, help="sequences for the slow loop reference")
    args = parser.parse_args()
    sigma2 = 0.125
    rng = np.random.default_rng(0)
    tasks = draw_task_sequence(0, 2**15, args.D)
    x, y = sample_sequences(rng, tasks, args.sequences, args.K, args.D, sigma2)
    xs, ys = x[: args.loop_sequences], y[: args.loop_sequences]

    print(f"shape D={args.D} K={args.K}; loop reference on {args.loop_sequences} sequences")
    _, t_vec, m_vec = timed(ridge_predict, xs, ys, sigma2)
    _, t_loop, m_loop = timed(ridge_loop, xs, ys, sigma2)
    print(f"ridge       vectorized {t_vec * 1e3:8.2f} ms  loop {t_loop * 1e3:8.2f} ms  speed-up {t_loop / t_vec:6.1f}x")
    for M in (16, 1024):
        _, t_vec, _ = timed(dmmse_predict, xs, ys, tasks[:M], sigma2)
        _, t_loop, _ = timed(dmmse_loop, xs, ys, tasks[:M], sigma2)
        print(f"dMMSE M={M:<5d} vectorized {t_vec * 1e3:8.2f} ms  loop {t_loop * 1e3:8.2f} ms  speed-up {t_loop / t_vec:6.1f}x")
    for chunk in (256, 1024, 4096):
        _, t_full, peak = timed(dmmse_predict, x, y, tasks, sigma2, chunk_size=chunk)
        print(
            f"dMMSE M=2^15 on {args.sequences} sequences, chunk {chunk:5d}: {t_full:6.2f} s, "
            f"peak traced memory {peak:7.1f} MiB"
        )


if __name__ == "__main__":
    main()
