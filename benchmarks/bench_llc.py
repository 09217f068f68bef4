"""Time the batched SGLD LLC estimator against a reference, in one process.

Reference: devinterp 1.3.2's ``estimate_learning_coeff_with_summary`` (chains
one after another) when it is importable, else a plain loop that runs one
chain at a time with ordinary autograd and the same update. Both sides get the
same model, data, ``ℓ_n(w*)`` and every SGLD setting explicitly (devinterp's
``nbeta`` default depends on the batch size, and 1.3.2 needs
``optimizer_kwargs``).

The model is the ``mini`` transformer,
``InContextRegressionTransformer(ModelConfig(D=2, K=8, n_layer=4, d_model=32,
n_head=2, d_mlp=64))``, briefly trained so that ``w*`` is near a minimum.

Usage::

    python benchmarks/bench_llc.py                       # batch 32 and 64, 1 thread
    python benchmarks/bench_llc.py --batch-size 64 --threads 2
    python benchmarks/bench_llc.py --reference loop      # skip devinterp
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from transient_ridge.llc import SGLDLearningCoefficient, chain_seeds
from transient_ridge.model import InContextRegressionTransformer, ModelConfig

MINI = ModelConfig(D=2, K=8, n_layer=4, d_model=32, n_head=2, d_mlp=64)


def make_data(n: int, seed: int, noise_variance: float = 0.125) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences with a fresh Gaussian task each: ``x (n, K, D)``, ``y (n, K)``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, MINI.K, MINI.D, generator=g)
    task = torch.randn(n, MINI.D, generator=g)
    y = torch.einsum("nkd,nd->nk", x, task) + math.sqrt(noise_variance) * torch.randn(n, MINI.K, generator=g)
    return x, y


def trained_mini_model(steps: int, seed: int) -> InContextRegressionTransformer:
    """The mini model after ``steps`` Adam steps (batch 64, fresh batches from ``(seed, step)``)."""
    torch.manual_seed(seed)  # parameter init only
    model = InContextRegressionTransformer(MINI)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        x, y = make_data(64, seed=10_000 + step)
        loss = F.mse_loss(model(x, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.requires_grad_(True)
    return model


def flops_per_chain_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Forward + backward FLOPs of one SGLD step of one chain (minibatch x, y)."""
    model = copy.deepcopy(model)
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(model(x, y), y).backward()
    return counter.get_total_flops()


def machine_gflops() -> float:
    """GFLOP/s of a 1024³ float32 matmul at the current thread count."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 1024**3 / best / 1e9


def loop_reference(model, x, y, *, epsilon, gamma, nbeta, num_chains, num_burnin, num_draws, batch_size, seed):
    """One chain at a time, plain autograd, same update and random streams as ours.

    Returns ``(llc_per_chain, elapsed_s)``.
    """
    start = time.perf_counter()
    n = y.shape[0]
    init = float(F.mse_loss(model(x, y), y).detach())
    out = []
    for s in chain_seeds(seed, num_chains):
        gen = torch.Generator().manual_seed(s)
        chain = copy.deepcopy(model)
        params = [p for p in chain.parameters() if p.requires_grad]
        w0 = [p.detach().clone() for p in params]
        draws = []
        for step in range(num_burnin + num_draws):
            idx = torch.randint(0, n, (batch_size,), generator=gen)
            noise = torch.randn(sum(p.numel() for p in params), generator=gen).split([p.numel() for p in params])
            loss = F.mse_loss(chain(x[idx], y[idx]), y[idx])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g, p0, z in zip(params, grads, w0, noise):
                    p.add_(-epsilon / 2 * (nbeta * g + gamma * (p - p0)) + math.sqrt(epsilon) * z.view_as(p))
            if step >= num_burnin:
                draws.append(float(loss.detach()))
        out.append(nbeta * (np.mean(draws) - init))
    return np.array(out), time.perf_counter() - start


def devinterp_reference(model, x, y, *, epsilon, gamma, nbeta, num_chains, num_burnin, num_draws, batch_size, seed, init_loss):
    """devinterp 1.3.2 with every setting explicit. Returns ``(llc_per_chain, elapsed_s)``."""
    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(
        TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )

    def evaluate(m, data):
        xb, yb = data
        return F.mse_loss(m(xb, yb), yb)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # devinterp warns about seeds, nbeta, deprecations
        results = estimate_learning_coeff_with_summary(
            model,
            loader,
            evaluate=evaluate,
            sampling_method=SGLD,
            optimizer_kwargs=dict(lr=epsilon, localization=gamma, nbeta=nbeta),
            num_chains=num_chains,
            num_draws=num_draws,
            num_burnin_steps=num_burnin,
            num_steps_bw_draws=1,
            init_loss=init_loss,
            seed=seed,
            cores=1,
            device="cpu",
            verbose=False,
        )
    elapsed = time.perf_counter() - start
    return np.array([results[f"llc-chain/{i}"] for i in range(num_chains)]), elapsed


def summary(per_chain: np.ndarray) -> tuple[float, float]:
    return float(per_chain.mean()), float(per_chain.std(ddof=1) / math.sqrt(len(per_chain)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-chains", type=int, default=8)
    parser.add_argument("--num-burnin", type=int, default=100)
    parser.add_argument("--num-draws", type=int, default=200)
    parser.add_argument("--epsilon", type=float, default=1e-3)
    parser.add_argument("--gamma", type=float, default=100.0)
    parser.add_argument("--nbeta", type=float, default=30.0)
    parser.add_argument("--num-samples", type=int, default=4096, help="n: sequences behind ℓ_n")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", choices=["auto", "devinterp", "loop"], default="auto")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    reference = args.reference
    if reference in ("auto", "devinterp"):
        try:
            from importlib.metadata import version

            import devinterp  # noqa: F401

            print(f"reference: devinterp {version('devinterp')} estimate_learning_coeff_with_summary")
            reference = "devinterp"
        except ImportError:
            if args.reference == "devinterp":
                raise
            print("reference: devinterp is not importable; using a one-chain-at-a-time autograd loop instead")
            reference = "loop"
    else:
        print("reference: one-chain-at-a-time autograd loop")

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads={args.threads}, "
        f"1024^3 matmul: {machine_gflops():.0f} GFLOP/s"
    )
    model = trained_mini_model(args.train_steps, args.seed)
    x, y = make_data(args.num_samples, seed=args.seed + 1)
    settings = dict(
        epsilon=args.epsilon,
        gamma=args.gamma,
        nbeta=args.nbeta,
        num_chains=args.num_chains,
        num_burnin=args.num_burnin,
        num_draws=args.num_draws,
        seed=args.seed,
    )
    steps = args.num_chains * (args.num_burnin + args.num_draws)
    print(f"model: mini {MINI}, {sum(p.numel() for p in model.parameters())} parameters, n={args.num_samples}")
    print(f"settings: {settings}, SGLD steps over all chains: {steps}")

    for m in args.batch_size:
        flops = flops_per_chain_step(model, x[:m], y[:m])
        ours = SGLDLearningCoefficient(**settings, batch_size=m, num_samples=args.num_samples).fit(
            model, F.mse_loss, (x, y), y
        )
        if reference == "devinterp":
            ref_chains, ref_s = devinterp_reference(model, x, y, **settings, batch_size=m, init_loss=ours.init_loss_)
        else:
            ref_chains, ref_s = loop_reference(model, x, y, **settings, batch_size=m)
        ours_mean, ours_se = ours.llc_mean_, ours.llc_sem_
        ref_mean, ref_se = summary(ref_chains)
        diff_se = math.hypot(ours_se, ref_se)
        agree = abs(ours_mean - ref_mean) <= 3 * diff_se
        print(f"\n== batch size {m} ==")
        print(f"ours      : {ours.elapsed_s_:7.2f} s  {steps / ours.elapsed_s_:7.1f} SGLD steps/s  "
              f"{flops * steps / ours.elapsed_s_ / 1e9:5.1f} GFLOP/s  LLC {ours_mean:.3f} ± {ours_se:.3f}"
              f"  (failed chains: {int(ours.failed_chains_.sum())})")
        print(f"reference : {ref_s:7.2f} s  {steps / ref_s:7.1f} SGLD steps/s  "
              f"{flops * steps / ref_s / 1e9:5.1f} GFLOP/s  LLC {ref_mean:.3f} ± {ref_se:.3f}")
        print(f"speed-up (reference time / ours): {ref_s / ours.elapsed_s_:.2f}x")
        print(f"estimates {'agree' if agree else 'DISAGREE'} within 3 combined SE "
              f"(|diff| = {abs(ours_mean - ref_mean):.3f}, 3 SE = {3 * diff_se:.3f})")
        print(f"ours: init loss {ours.init_loss_:.4f}, mean draw loss {np.mean(ours.loss_trace_[:, args.num_burnin:]):.4f}, "
              f"{flops / 1e6:.0f} MFLOP per chain step")


if __name__ == "__main__":
    main()
