"""Hand-made experiment stores for the claims tests: runs that go to dMMSE_M, to ridge or through
ridge first, their baselines, PCA and LLC store (the layouts of docs/stores.md)."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from llc_stores import llc_store
from transient_ridge.seeds import runs_by_M

STEPS = 6
RIDGE_OOD = 0.7  # ridge's OOD loss in the synthetic baselines
TRANSIENT_OOD = np.array([2.0, 1.0, 0.8, 0.9, 1.1, 1.2])
TRANSIENT_RIDGE = np.array([1.0, 0.3, 0.1, 0.15, 0.2, 0.3])


def outputs_of(M, ood, ridge, dmmse):
    steps = np.arange(len(ood)) * 10
    return xr.Dataset(
        {"loss_ood": ("step", ood), "dist_ridge": ("step", ridge), "dist_dmmse": ("step", dmmse),
         "loss_id": ("step", dmmse)},
        coords={"step": steps},
        attrs={"M": M},
    )


def baselines_of(gaps, ridge_ood=RIDGE_OOD, dmmse_ood=None, n_seq=4, K=2):
    """Baselines with known answers: ``gaps`` maps M to the ridge–dMMSE_M distance, ``dmmse_ood``
    to dMMSE_M's OOD loss (every token); ridge's OOD loss is ``ridge_ood``."""
    Ms = sorted(gaps)
    dmmse_ood = dmmse_ood or {M: 1.1 for M in Ms}
    ridge_id = np.zeros((len(Ms), n_seq, K))
    dmmse_id = np.stack([np.full((n_seq, K), math.sqrt(gaps[M])) for M in Ms])  # squared difference = gap
    return xr.Dataset(
        {"ridge_id": (("M", "id_sequence", "token"), ridge_id), "dmmse_id": (("M", "id_sequence", "token"), dmmse_id),
         "loss_ridge_ood": ("token", np.full(K, ridge_ood)),
         "loss_dmmse_ood": (("M", "token"), np.stack([np.full(K, dmmse_ood[M]) for M in Ms]))},
        coords={"M": Ms},
    )


def run_of(M, kind, inf_excess=0.02):
    """One run's outputs: ``dmmse`` goes straight to dMMSE_M, ``ridge`` to ridge (M = inf ends
    ``inf_excess`` above ridge's OOD loss), ``transient`` comes near ridge, then specialises."""
    if kind == "dmmse":
        return outputs_of(M, np.linspace(3, 2, STEPS), np.ones(STEPS), np.linspace(0.5, 0.01, STEPS))
    if kind == "ridge":
        return outputs_of(M, np.linspace(2, RIDGE_OOD * (1 + inf_excess), STEPS), np.linspace(1, 0.01, STEPS),
                        np.ones(STEPS))
    if kind == "transient":
        return outputs_of(M, TRANSIENT_OOD, TRANSIENT_RIDGE, np.linspace(1.0, 0.1, STEPS))
    raise ValueError(kind)


def stores(kinds, llc, *, sem=0.1, advantage=None, inf_excess=0.02):
    """An experiment's stores: ``kinds`` M → run kind (:func:`_run`), ``llc`` M → final LLC (an
    earlier step at half of it), ``sem`` one s.e. or M → s.e., ``advantage`` M → ridge's final
    in-distribution loss minus the run's (default 0.1)."""
    Ms = sorted(kinds)
    outputs = {M: run_of(M, kinds[M], inf_excess) for M in Ms}
    baselines = baselines_of({M: 0.4 for M in Ms})
    small = next((f"{M:g}" for M in Ms if math.isfinite(M)), "1")
    ends = {"dmmse": [10.0, 0.0], "transient": [9.0, 0.5], "ridge": [0.2, 0.1]}
    trajectory = np.array([[[5.0, 5.0], ends[kinds[M]]] for M in Ms])
    pca = xr.Dataset(
        {"predictor_projection": (("predictor", "pc"), [[0.0, 0.0], [10.0, 0.0]]),
         "trajectory": (("M", "step", "pc"), trajectory), "explained_variance_ratio": ("pc", [0.5, 0.2])},
        coords={"predictor": ["ridge", f"dmmse_M{small}"], "pc": [1, 2], "M": Ms},
    )
    advantage = {**{M: 0.1 for M in Ms}, **(advantage or {})}
    loss = np.full((len(Ms), 2), 0.5)
    ridge_loss = loss + np.array([[advantage[M]] * 2 for M in Ms])
    store = llc_store([[llc[M] / 2, llc[M]] for M in Ms], M=Ms, steps=[10, 50], loss=loss, ridge_loss=ridge_loss)
    sems = sem if isinstance(sem, dict) else {M: sem for M in Ms}
    store["llc_sem"].values[:] = np.array([[sems[M]] * 2 for M in Ms])
    return outputs, baselines, pca, store


# mini as built at 53f944c (results/mini/claims.md): M = 1, 4, 16 end at dMMSE_M, M = 64 and inf
# at ridge; the final LLC grows with M among the dMMSE-like runs but stays below M = inf's; the
# loss advantage over ridge on q_M shrinks; nothing is transient.
MINI_KINDS = {1.0: "dmmse", 4.0: "dmmse", 16.0: "dmmse", 64.0: "ridge", math.inf: "ridge"}
MINI_LLC = {1.0: 1.03, 4.0: 5.81, 16.0: 9.30, 64.0: 10.01, math.inf: 12.4}
MINI_SEM = {1.0: 0.12, 4.0: 0.25, 16.0: 0.18, 64.0: 0.34, math.inf: 0.65}
MINI_ADVANTAGE = {1.0: 0.149, 4.0: 0.142, 16.0: 0.055, 64.0: -0.005, math.inf: -0.03}


def seeded(per_seed):
    """Stores stacked over seeds: ``per_seed`` maps train seed → :func:`_stores` keyword arguments
    (each seed its own LLC, M = inf endpoint …; the same M grid)."""
    runs, pcas, llcs = [], [], []
    for seed, kwargs in per_seed.items():
        outputs, baselines, pca, llc = stores(kwargs.pop("kinds", MINI_KINDS), {**MINI_LLC, **kwargs.pop("llc", {})},
                                               **{"sem": MINI_SEM, "advantage": MINI_ADVANTAGE, **kwargs})
        for ds in outputs.values():
            ds.attrs.update(seed=seed, t_crit=20)
            runs.append(ds)
        pcas.append(pca)
        llcs.append(llc)
    seeds = xr.DataArray(list(per_seed), dims="seed")
    pca = xr.concat(pcas, dim=seeds).transpose("M", "seed", ...)
    pca["predictor_projection"] = pcas[0]["predictor_projection"]
    llc = xr.concat(llcs, dim=seeds).transpose("M", "seed", ...)
    return runs_by_M(runs, seed_axis=True), baselines, pca, llc
