"""Rule `claims`: check the paper's findings on this experiment's stores (reports, never fails).

With a seed axis every claim is checked on each train seed's runs and reported as
"holds in k of n seeds" with each seed's numbers; the LLC sections come once per seed.
"""

import json
import logging
from pathlib import Path

import xarray as xr

from transient_ridge.claims import (
    calibration_report,
    check_claims,
    check_claims_over_seeds,
    claims_json,
    claims_markdown,
    llc_health_report,
    llc_sections_markdown,
    seed_claims_json,
    seed_claims_markdown,
    summarize_over_seeds,
)
from transient_ridge.config import ExperimentConfig
from transient_ridge.llc_trend import llc_over_training_markdown, llc_over_training_report
from transient_ridge.provenance import current_stamp, start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.seeds import runs_by_M, select_seed
from transient_ridge.store import open_dataset


def llc_sections(
    llc: xr.Dataset, chosen: dict | None, seeds: list[int] | None, calibration_seed: int | None = None
) -> tuple[list[str], dict]:
    """Markdown lines and JSON of the LLC sections: over training and health, per seed with a seed axis."""
    extra: dict = {"llc_calibration": chosen}
    lines: list[str] = []
    for seed in seeds or [None]:
        one = llc if seed is None else select_seed(llc, seed)
        health = llc_health_report(one)
        trend = llc_over_training_report(one)
        where = "" if seed is None else f" (train seed {seed})"
        if health["counts"]["failed"] or health["counts"]["unreliable"]:
            logging.warning("LLC estimates not sound%s: %s", where, health["not_sound"])
        for run in trend["runs"]:
            logging.info("LLC over training, M=%s%s: %s (last/first sound = %.3g)", run["M"], where, run["shape"],
                         run["last_over_first"])
        if seed is None:  # one seed: the calibration section sits between the two, as it always has
            lines += llc_over_training_markdown(trend) + llc_sections_markdown(health, chosen)
            extra.update(llc_health=health, llc_over_training=trend)
        else:
            lines += ["", f"# LLC, train seed {seed}"] + llc_over_training_markdown(trend)
            lines += llc_sections_markdown(health, None)
            extra.setdefault("llc_health", {})[seed] = health
            extra.setdefault("llc_over_training", {})[seed] = trend
    if seeds and chosen is not None:
        lines += ["", f"# LLC step size (calibrated on the runs of train seed {calibration_seed})"]
        lines += llc_sections_markdown(None, chosen)
    return lines, extra


def main(
    experiment: str, block: dict, outputs_paths: list[str], baselines: str, pca: str, llc: str, md: str, json_path: str,
    calibration: str | None = None,
) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    seed_axis = cfg.seeds.has_seed_axis
    outputs = runs_by_M([open_dataset(path).drop_vars("pred_root") for path in outputs_paths], seed_axis=seed_axis)
    llc_ds = open_dataset(llc)
    stores = (outputs, open_dataset(baselines), open_dataset(pca), llc_ds)
    chosen = calibration_report(open_dataset(calibration)) if calibration else None
    stamp = current_stamp()
    commit = stamp["git_commit"][:12] + (" (uncommitted changes or untracked files)" if stamp["git_dirty"] is True else "")
    footer = f"\n\n_Checked by rule `{stamp['rule']}` at commit {commit}, {stamp['created_utc']}._\n"
    window = cfg.figures.smoothing_window
    if seed_axis:
        summary = summarize_over_seeds(check_claims_over_seeds(*stores, smoothing_window=window))
        for claim in summary:
            logging.info("%s: %s", claim.name, claim.verdict)
        seeds = sorted({s for c in summary for s in c.seeds})
        lines, extra = llc_sections(llc_ds, chosen, seeds, cfg.seeds.train_seeds[0])
        markdown = seed_claims_markdown(experiment, summary, lines)
        report = json.loads(seed_claims_json(experiment, summary, extra))
    else:
        claims = check_claims(*stores, smoothing_window=window)
        for claim in claims:
            logging.info("%s: %s", claim.name, "holds" if claim.holds else "does NOT hold")
        lines, extra = llc_sections(llc_ds, chosen, None)
        markdown = claims_markdown(experiment, claims, lines)
        report = json.loads(claims_json(experiment, claims, extra))
    Path(md).write_text(markdown.rstrip("\n") + footer)
    Path(json_path).write_text(json.dumps({**report, "provenance": stamp}, indent=2, sort_keys=True))


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        list(snakemake.input.outputs),
        snakemake.input.baselines,
        snakemake.input.pca,
        snakemake.input.llc,
        snakemake.output.md,
        snakemake.output.json,
        snakemake.input.get("calibration"),
    )
