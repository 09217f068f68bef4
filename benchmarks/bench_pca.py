"""Benchmark: joint trajectory PCA at paper size (wall time and peak memory).

    python benchmarks/bench_pca.py                       # 17 runs x 2203 checkpoints x 512*16 features
    python benchmarks/bench_pca.py --runs 4 --steps 500  # smaller

Compares randomized SVD (what the pipeline uses at this size) against the full
LAPACK SVD on a subsample, in the same process. Peak memory is the process's
maximum resident set size (ru_maxrss), which includes the input matrix.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from transient_ridge.pca import TrajectoryPCA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=17)
    parser.add_argument("--steps", type=int, default=2203)
    parser.add_argument("--features", type=int, default=512 * 16)
    parser.add_argument("--components", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_rows = args.runs * args.steps
    # low-rank trajectories plus noise, float32 like the pipeline's pred_root
    latent = rng.standard_normal((n_rows, 8), dtype=np.float32)
    basis = rng.standard_normal((8, args.features), dtype=np.float32)
    rows = latent @ basis
    for start in range(0, n_rows, 4096):  # noise in chunks: no second full-size temporary
        rows[start : start + 4096] += 0.1 * rng.standard_normal((min(4096, n_rows - start), args.features), dtype=np.float32)
    print(f"matrix {n_rows} x {args.features} float32 = {rows.nbytes / 2**30:.2f} GiB, "
          f"RSS before the PCA {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    start = time.perf_counter()
    pca = TrajectoryPCA(args.components).fit(rows)
    pca.transform(rows)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"fit + transform (auto -> randomized): {elapsed:.1f} s, peak RSS {peak:.2f} GiB")
    print(f"explained variance ratio: {np.round(pca.explained_variance_ratio_, 4).tolist()}")
    sub = rows[:: max(1, n_rows // 3000)]
    start = time.perf_counter()
    full = TrajectoryPCA(args.components, svd_solver="full").fit(sub)
    t_full = time.perf_counter() - start
    start = time.perf_counter()
    rand = TrajectoryPCA(args.components, svd_solver="randomized").fit(sub)
    t_rand = time.perf_counter() - start
    agreement = np.abs(np.sum(full.components_ * rand.components_, axis=1))
    print(
        f"subsample {sub.shape[0]} rows: full SVD {t_full:.1f} s, randomized {t_rand:.1f} s "
        f"(ratio {t_full / t_rand:.1f}x), |cos| between solvers' components {np.round(agreement, 6).tolist()}"
    )


if __name__ == "__main__":
    main()
