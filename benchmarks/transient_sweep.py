"""Sweep candidate designs for the transient experiment as batched ensembles (made for a GPU).

    python benchmarks/transient_sweep.py SPEC.yaml --out DIR [--group NAME] [--time-limit S]
    python benchmarks/transient_sweep.py SPEC.yaml --out DIR --summarize

A spec lists groups of runs that share a shape (data D, K, σ², model, batch size) and
differ in M, seed and optimizer variant (learning rate, schedule, weight decay,
Adam or AdamW). Each group trains all its members as one batched computation
(:mod:`transient_ridge.ensemble`) and records, at the pipeline's checkpoint grid,
the OOD loss and the distances to ridge and dMMSE_M on the in-distribution probe set,
with the pipeline's own task sequence, probe sets and baselines. The summary applies
the claims rule (``claims.measure_transience``, same smoothing) to every member at every
horizon in the spec, plus the two ratios of a transient that comes near ridge first:

- approach = min smoothed distance to ridge / distance between ridge and dMMSE_M on q_M,
- depth = (min smoothed OOD loss − ridge's) / (dMMSE_M's OOD loss − ridge's),

and counts, per design and M, the seeds that are transient with both ratios <= 0.5.
Batches are drawn from the same distributions as the pipeline's, not the pipeline's
``(seed, step)`` batches, so a chosen design is then confirmed by the pipeline itself.
Nothing under results/ is touched.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import yaml

from transient_ridge.claims import measure_transience
from transient_ridge.config import ExperimentConfig, ScheduleConfig, format_task_count, parse_task_count
from transient_ridge.data import draw_task_sequence, make_probe_sets, task_set
from transient_ridge.ensemble import EnsembleAdam, EnsembleTransformer, sample_ensemble_batch
from transient_ridge.model import ModelConfig
from transient_ridge.smoothing import smooth
from transient_ridge.predictors import dmmse_predict, ridge_predict
from transient_ridge.schedule import checkpoint_steps, learning_rate

REPO = Path(__file__).resolve().parents[1]
NEAR = 0.5  # approach and depth must both be at most this


def _set(block: dict, key: str, value: object) -> None:
    *parents, leaf = key.split(".")
    node = block
    for part in parents:
        node = node[part]
    node[leaf] = value


def group_config(spec: dict, group: dict) -> ExperimentConfig:
    """The experiment a group starts from (``spec['base']`` in config.yaml) with its ``set`` overrides."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    block = copy.deepcopy(config["experiments"][spec.get("base", "transient")])
    for key, value in {**spec.get("set", {}), **group.get("set", {})}.items():
        _set(block, key, value)
    block["data"]["M"] = group["M"]
    block["training"]["steps"] = int(group.get("steps", spec.get("steps", block["training"]["steps"])))
    return ExperimentConfig.from_dict(group["name"], block)


def members_of(spec: dict, group: dict, cfg: ExperimentConfig) -> list[dict]:
    """Every (variant, M, seed) of a group (variants default to the spec's), with init seed and optimizer."""
    seeds = group.get("seeds", [cfg.seeds.train])
    init_seeds = group.get("init_seeds", [cfg.seeds.init + 10 * i for i in range(len(seeds))])
    members = []
    variants = group.get("variants", spec.get("variants"))
    for variant, M, (seed, init) in itertools.product(variants, cfg.data.M, zip(seeds, init_seeds)):
        members.append({
            "variant": variant["name"], "M": M, "seed": int(seed), "init_seed": int(init),
            "lr": float(variant.get("lr", cfg.training.lr)),
            "weight_decay": float(variant.get("weight_decay", 0.0)),
            "decoupled": bool(variant.get("decoupled", False)),
            "schedule": variant.get("schedule", dict(cfg.raw["training"]["schedule"])),
        })
    return members


def baselines_for(cfg: ExperimentConfig, tasks: np.ndarray, probes) -> dict:
    """Ridge and dMMSE_M predictions and losses on the OOD set and each M's in-distribution set."""
    noise = cfg.data.noise_variance
    ridge_ood = ridge_predict(probes.ood_x, probes.ood_y, noise)
    result = {"ridge_ood_loss": float(np.mean((ridge_ood - probes.ood_y) ** 2)), "M": {}}
    for i, M in enumerate(probes.M):
        set_M = task_set(tasks, M)
        ridge_id = ridge_predict(probes.id_x[i], probes.id_y[i], noise)
        if set_M is None:
            dmmse_id, dmmse_ood_loss = ridge_id, result["ridge_ood_loss"]
        else:
            dmmse_id = dmmse_predict(probes.id_x[i], probes.id_y[i], set_M, noise)
            dmmse_ood_loss = float(np.mean((dmmse_predict(probes.ood_x, probes.ood_y, set_M, noise) - probes.ood_y) ** 2))
        result["M"][M] = {
            "ridge_id": ridge_id, "dmmse_id": dmmse_id, "dmmse_ood_loss": dmmse_ood_loss,
            "gap": float(np.mean((ridge_id - dmmse_id) ** 2)),
        }
    return result


@torch.no_grad()
def _predict(model: EnsembleTransformer, x: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
    """Predictions ``(E, N, K)`` for ``x (E, N, K, D)``, in chunks of sequences."""
    return torch.cat([model(x[:, s : s + chunk], y[:, s : s + chunk]) for s in range(0, x.shape[1], chunk)], dim=1)


def train_group(spec: dict, group: dict, device: torch.device, time_limit: float, log) -> dict:
    """Train every member of ``group`` together; return the recorded series and settings."""
    cfg = group_config(spec, group)
    members = members_of(spec, group, cfg)
    E = len(members)
    total = cfg.training.steps
    tasks = draw_task_sequence(cfg.seeds.tasks, cfg.data.max_finite_M, cfg.data.D)
    probes = make_probe_sets(
        tasks, cfg.data.M, seed=cfg.seeds.probes, K=cfg.data.K, noise_variance=cfg.data.noise_variance,
        root_sequences=1, ood_sequences=cfg.probes.ood_sequences, id_sequences=cfg.probes.id_sequences,
    )
    baselines = baselines_for(cfg, tasks, probes)
    index_of_M = {M: i for i, M in enumerate(probes.M)}
    member_M = [m["M"] for m in members]
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    ood_x = as_tensor(probes.ood_x)[None].expand(E, -1, -1, -1)
    ood_y = as_tensor(probes.ood_y)[None].expand(E, -1, -1)
    id_x = as_tensor(np.stack([probes.id_x[index_of_M[M]] for M in member_M]))
    id_y = as_tensor(np.stack([probes.id_y[index_of_M[M]] for M in member_M]))
    ridge_id = as_tensor(np.stack([baselines["M"][M]["ridge_id"] for M in member_M]))
    dmmse_id = as_tensor(np.stack([baselines["M"][M]["dmmse_id"] for M in member_M]))

    shape = cfg.model  # (not train.model_config_for: that module needs zarr, which GPU images may lack)
    model_config = ModelConfig(cfg.data.D, cfg.data.K, shape.n_layer, shape.d_model, shape.n_head, shape.d_mlp)
    model = EnsembleTransformer(model_config, [m["init_seed"] for m in members], device)
    optimizer = EnsembleAdam(
        model.flat, torch.tensor([m["weight_decay"] for m in members]), torch.tensor([m["decoupled"] for m in members]),
        betas=cfg.training.betas,
    )
    variants = sorted({m["variant"] for m in members})
    settings = {m["variant"]: m for m in members}
    lr_table = torch.tensor(
        [[learning_rate(s, total, settings[v]["lr"], ScheduleConfig(**settings[v]["schedule"])) for v in variants]
         for s in range(total)], dtype=torch.float32, device=device,
    )  # (steps, variants)
    variant_index = torch.tensor([variants.index(m["variant"]) for m in members], device=device)
    task_tensor = as_tensor(tasks)
    M_tensor = torch.tensor(member_M, dtype=torch.float32, device=device)
    generator = torch.Generator(device=device).manual_seed(int(group.get("data_seed", 1234)))
    record_steps = checkpoint_steps(total, cfg.checkpoints.linear_interval, cfg.checkpoints.log_count)
    wanted = set(record_steps.tolist())
    series = {k: [] for k in ("loss_ood", "dist_ridge", "dist_dmmse", "dist_ridge_token")}
    steps_done: list[int] = []
    chunk = max(1, 65536 // max(1, E))

    def record(step: int) -> None:
        pred_ood = _predict(model, ood_x, ood_y, chunk)
        pred_id = _predict(model, id_x, id_y, chunk)
        series["loss_ood"].append(((pred_ood - ood_y) ** 2).mean(dim=(1, 2)).cpu().numpy())
        ridge_token = ((pred_id - ridge_id) ** 2).mean(dim=1)  # (E, K)
        series["dist_ridge_token"].append(ridge_token.cpu().numpy())
        series["dist_ridge"].append(ridge_token.mean(dim=1).cpu().numpy())
        series["dist_dmmse"].append(((pred_id - dmmse_id) ** 2).mean(dim=(1, 2)).cpu().numpy())
        steps_done.append(step)

    started = time.perf_counter()
    record(0)
    stopped_early = False
    step = 0
    while step < total:
        x, y = sample_ensemble_batch(
            task_tensor, M_tensor, batch_size=cfg.training.batch_size, K=cfg.data.K,
            noise_variance=cfg.data.noise_variance, generator=generator,
        )
        loss = ((model(x, y) - y) ** 2).mean(dim=(1, 2))  # (E,)
        loss.sum().backward()
        optimizer.step(lr_table[step].gather(0, variant_index))
        step += 1
        if step in wanted:
            record(step)
            if not torch.isfinite(loss).all():
                log(f"{group['name']}: non-finite loss at step {step} in {int((~torch.isfinite(loss)).sum())} members")
        if step % 100 == 0:
            elapsed = time.perf_counter() - started
            if step % 2000 == 0:
                log(f"{group['name']}: step {step}/{total}, {step / elapsed:.0f} steps/s, E={E}")
            if elapsed > time_limit:
                log(f"{group['name']}: time limit {time_limit:.0f} s reached at step {step}; stopping")
                stopped_early = True
                break
    elapsed = time.perf_counter() - started
    return {
        "group": group["name"], "config": json.loads(cfg.to_json()), "members": [
            {**m, "M": format_task_count(m["M"])} for m in members
        ],
        "steps": steps_done, "wall_s": elapsed, "steps_per_s": step / elapsed, "stopped_early": stopped_early,
        "device": str(device), "smoothing_window": cfg.figures.smoothing_window,
        "baselines": {
            "ridge_ood_loss": baselines["ridge_ood_loss"],
            "M": {format_task_count(M): {k: v for k, v in b.items() if k in ("dmmse_ood_loss", "gap")}
                  for M, b in baselines["M"].items()},
        },
        # (E, checkpoints[, K]), 6 significant digits: far below the seed-to-seed spread
        "series": {k: np.vectorize(lambda v: float(f"{v:.6g}"))(np.stack(v, axis=1)).tolist() for k, v in series.items()},
    }


def summarize_member(result: dict, member: int, horizon: int) -> dict:
    """Claims-rule numbers, approach and depth of one member, its series cut at ``horizon``."""
    m = result["members"][member]
    steps = np.array(result["steps"])
    keep = steps <= horizon
    window = result["smoothing_window"]
    data = {k: np.array(result["series"][k][member])[keep] for k in ("loss_ood", "dist_ridge", "dist_dmmse")}
    M = parse_task_count(m["M"])
    ridge_ood = result["baselines"]["ridge_ood_loss"]
    b = result["baselines"]["M"][m["M"]]
    row = {**{k: m[k] for k in ("variant", "M", "seed")}, "horizon": int(steps[keep][-1])}
    if math.isinf(M):
        row["final_dist_ridge"] = float(data["dist_ridge"][-1])
        row["final_ood_excess"] = float(smooth(data["loss_ood"], window)[-1] / ridge_ood - 1)
        return row
    outputs = xr.Dataset({k: ("step", v) for k, v in data.items()}, coords={"step": steps[keep]}, attrs={"M": M})
    measure = measure_transience(outputs, window)
    approach = measure.ridge_min / b["gap"]
    depth = (measure.ood_min - ridge_ood) / (b["dmmse_ood_loss"] - ridge_ood)
    row.update({k: v for k, v in measure.__dict__.items() if k != "M"})
    row.update(approach=approach, depth=depth, gap=b["gap"],
               substantive=bool(measure.is_transient and approach <= NEAR and depth <= NEAR))
    return row


def load_results(out: Path) -> list[dict]:
    """Every group result in ``out`` (``group_*.json``, or gzipped as kept in benchmarks/sweeps/results/)."""
    results = []
    for path in sorted(out.glob("group_*.json*")):
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        results.append(json.loads(text))
    return results


def _span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{format(low, fmt)}–{format(high, fmt)}"


def markdown_table(rows: list[dict]) -> str:
    """One line per design and M at each group's last cut: ranges over seeds, and seed counts."""
    last = {}
    for r in rows:
        last[r["group"]] = max(last.get(r["group"], 0), r["horizon"])
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["horizon"] == last[r["group"]]:
            groups.setdefault((r["group"], r["variant"], r["M"]), []).append(r)
    lines = ["| group | variant | M | steps | approach | OOD depth | OOD rise | ridge rise | dMMSE end / at OOD min "
             "| transient (old rule) | and near ridge |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (group, variant, M), rs in groups.items():
        n = len(rs)
        if M == "inf":
            lines.append(f"| {group} | {variant} | ∞ | {rs[0]['horizon']} | final distance to ridge "
                         f"{_span([r['final_dist_ridge'] for r in rs], '.3f')}, OOD {_span([r['final_ood_excess'] for r in rs], '+.0%')} "
                         "vs ridge | | | | | | |")
            continue
        lines.append(
            f"| {group} | {variant} | {M} | {rs[0]['horizon']} | {_span([r['approach'] for r in rs], '.2f')} | "
            f"{_span([r['depth'] for r in rs], '.2f')} | {_span([r['ood_rise'] for r in rs], '+.0%')} | "
            f"{_span([r['ridge_rise'] for r in rs], '+.0%')} | {_span([r['dmmse_final_over_at_ood_min'] for r in rs], '.2f')} | "
            f"{sum(r['is_transient'] for r in rs)}/{n} | {sum(r['substantive'] for r in rs)}/{n} |"
        )
    return "\n".join(lines)


def summarize(out: Path, horizons: list[int] | None) -> list[dict]:
    rows = []
    for result in load_results(out):
        last = result["steps"][-1]  # a group stopped by its time limit is also cut where it stopped
        cuts = sorted({h for h in horizons or [] if h < last} | {last})
        for member in range(len(result["members"])):
            for horizon in cuts:
                rows.append({"group": result["group"], **summarize_member(result, member, horizon)})
    print(f"{'group':>10s} {'variant':>12s} {'M':>4s} {'seed':>4s} {'cut':>6s} {'approach':>8s} {'depth':>6s} "
          f"{'OOD min(step)':>15s} {'rise':>6s} {'r-rise':>6s} {'dmmse':>6s} verdict")
    for r in rows:
        if r["M"] == "inf":
            print(f"{r['group']:>10s} {r['variant']:>12s} {r['M']:>4s} {r['seed']:4d} {r['horizon']:6d} "
                  f"final distance to ridge {r['final_dist_ridge']:.4f}, OOD {r['final_ood_excess']:+.1%} vs ridge")
            continue
        verdict = "SUBSTANTIVE" if r["substantive"] else ("transient" if r["is_transient"] else "-")
        print(f"{r['group']:>10s} {r['variant']:>12s} {r['M']:>4s} {r['seed']:4d} {r['horizon']:6d} {r['approach']:8.2f} "
              f"{r['depth']:6.2f} {r['ood_min']:7.3f}({r['ood_min_step']:6d}) {r['ood_rise']:+6.1%} "
              f"{r['ridge_rise']:+6.1%} {r['dmmse_final_over_at_ood_min']:6.2f} {verdict}")
    print("\nper design and cut: intermediate M with >= 2 seeds substantive")
    designs = sorted({(r["group"], r["variant"], r["horizon"]) for r in rows if r["M"] != "inf"})
    for group, variant, horizon in designs:
        per_M = {}
        for r in rows:
            if (r["group"], r["variant"], r["horizon"], r["M"] != "inf") == (group, variant, horizon, True):
                per_M.setdefault(r["M"], []).append(r["substantive"])
        counts = ", ".join(f"M={M}: {sum(v)}/{len(v)}" for M, v in per_M.items())
        good = sum(sum(v) >= 2 for v in per_M.values())
        print(f"{group:>10s} {variant:>12s} cut {horizon:6d}: {counts}  -> {good} M qualify")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--group", action="append", help="train only these groups (default: all, one after another)")
    parser.add_argument("--time-limit", type=float, default=math.inf, help="seconds of training per group")
    parser.add_argument("--summarize", action="store_true", help="only summarize the results in --out")
    parser.add_argument("--markdown", action="store_true", help="with --summarize: also a table per design and M")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls on CUDA (faster; for ranking designs only)")
    args = parser.parse_args()
    spec = yaml.safe_load(args.spec.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    if args.summarize:
        rows = summarize(args.out, spec.get("horizons"))
        (args.out / "summary.json").write_text(json.dumps(rows, indent=1, default=str))
        if args.markdown:
            print("\n" + markdown_table(rows))
        return
    torch.set_num_threads(1)
    device = torch.device(args.device)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    groups = [g for g in spec["groups"] if not args.group or g["name"] in args.group]

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    for group in groups:
        result = train_group(spec, group, device, args.time_limit, log)
        path = args.out / f"group_{group['name']}.json"
        path.write_text(json.dumps(result))
        log(f"{group['name']}: {len(result['members'])} members, {result['steps'][-1]} steps in "
            f"{result['wall_s']:.0f} s -> {path}")


if __name__ == "__main__":
    main()
