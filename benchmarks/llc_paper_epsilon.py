"""Where does SGLD start to diverge on the paper model? An ε scan on a CPU.

    nice -n 10 python benchmarks/llc_paper_epsilon.py --train-steps 300 \
        --epsilon 3e-4 1e-4 3e-5 1e-5 --chains 4 --burnin 50 --draws 50 --batch-size 64

The paper model (2 layers, d_model 512, d_mlp 256, 4 heads, D = 8, K = 16,
2.66 M parameters) is trained with Adam (lr 1e-3, batch 256) on 64 tasks, as
in ``../shared/gpu/llc_vs_devinterp.py`` (which measured ε = 3e-4 and 1e-4
diverging and 3e-5 healthy after 2 000 steps on a GPU). The trained weights are
cached (``--cache``) so that a second scan does not retrain. For each ε the
project's estimator runs with γ and nβ as given and prints the failed chains,
the trace peak over the start loss (``llc_health.trace_peak_ratio``; above
``SPIKE_RATIO`` = 10 the estimate is not trusted) and the estimate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from transient_ridge.data import sample_batch
from transient_ridge.llc import SGLDLearningCoefficient
from transient_ridge.llc_health import SPIKE_RATIO, trace_peak_ratio
from transient_ridge.model import InContextRegressionTransformer, ModelConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--epsilon", type=float, nargs="+", default=[3e-4, 1e-4, 3e-5, 1e-5])
    parser.add_argument("--gamma", type=float, default=300.0)
    parser.add_argument("--nbeta", type=float, default=100.0)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--burnin", type=int, default=50)
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64, help="SGLD minibatch")
    parser.add_argument("--num-samples", type=int, default=4096, help="n behind l_n(w*)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/llc_paper_epsilon_model.pt"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = ModelConfig(D=8, K=16, n_layer=2, d_model=512, n_head=4, d_mlp=256)
    torch.manual_seed(0)
    model = InContextRegressionTransformer(cfg)
    tasks = torch.randn(64, cfg.D, generator=torch.Generator().manual_seed(0))
    cache = args.cache.with_name(f"{args.cache.stem}_{args.train_steps}{args.cache.suffix}")
    if cache.exists():
        model.load_state_dict(torch.load(cache))
        print(f"loaded {cache}", flush=True)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        start = time.perf_counter()
        for i in range(args.train_steps):
            x, y = sample_batch(tasks, seed=0, step=i, batch_size=256, K=cfg.K, D=cfg.D, noise_variance=0.125)
            loss = F.mse_loss(model(x, y), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (i + 1) % 50 == 0:
                rate = (i + 1) / (time.perf_counter() - start)
                print(f"train step {i + 1}: loss {loss.item():.4f} ({rate:.2f} steps/s)", flush=True)
        torch.save(model.state_dict(), cache)
    model.eval()
    chunks = [sample_batch(tasks, seed=1, step=i, batch_size=1024, K=cfg.K, D=cfg.D, noise_variance=0.125)
              for i in range(max(1, args.num_samples // 1024))]
    x, y = torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])
    print(f"paper model ({sum(p.numel() for p in model.parameters())} parameters) after {args.train_steps} Adam "
          f"steps; gamma={args.gamma:g} nbeta={args.nbeta:g} chains={args.chains} burn-in={args.burnin} "
          f"draws={args.draws} batch={args.batch_size} n={len(y)} threads={args.threads}", flush=True)
    print("| ε | failed chains | ℓ_n(w*) | trace peak / ℓ_n(w*) | LLC ± s.e. | wall s |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    for eps in args.epsilon:
        est = SGLDLearningCoefficient(epsilon=eps, gamma=args.gamma, nbeta=args.nbeta, num_chains=args.chains,
                                      num_burnin=args.burnin, num_draws=args.draws, batch_size=args.batch_size,
                                      seed=0, num_samples=len(y))
        start = time.perf_counter()
        try:
            est.fit(model, F.mse_loss, (x, y), y)
        except RuntimeError:
            print(f"| {eps:.0e} | {args.chains}/{args.chains} | | diverged | n/a | {time.perf_counter() - start:.0f} |",
                  flush=True)
            continue
        peak = float(trace_peak_ratio(est.loss_trace_, est.init_loss_))
        flag = " (spiked)" if peak > SPIKE_RATIO else ""
        print(f"| {eps:.0e} | {int(np.sum(est.failed_chains_))}/{args.chains} | {est.init_loss_:.3f} | {peak:.2f}{flag} | "
              f"{est.llc_mean_:.1f} ± {est.llc_sem_:.1f} | {est.elapsed_s_:.0f} |", flush=True)


if __name__ == "__main__":
    main()
