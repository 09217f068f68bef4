"""Rule `claims`: check the paper's findings on this experiment's stores (reports, never fails)."""

import json
import logging
from pathlib import Path

from transient_ridge.claims import (
    calibration_report,
    check_claims,
    claims_json,
    claims_markdown,
    llc_health_report,
    llc_sections_markdown,
)
from transient_ridge.config import ExperimentConfig
from transient_ridge.llc_trend import llc_over_training_markdown, llc_over_training_report
from transient_ridge.provenance import current_stamp, start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.store import open_dataset


def main(
    experiment: str, block: dict, outputs_paths: list[str], baselines: str, pca: str, llc: str, md: str, json_path: str,
    calibration: str | None = None,
) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    outputs = {}
    for path in outputs_paths:
        dataset = open_dataset(path).drop_vars("pred_root")
        outputs[float(dataset.attrs["M"])] = dataset
    llc_ds = open_dataset(llc)
    claims = check_claims(
        outputs,
        open_dataset(baselines),
        open_dataset(pca),
        llc_ds,
        smoothing_window=cfg.figures.smoothing_window,
    )
    for claim in claims:
        logging.info("%s: %s", claim.name, "holds" if claim.holds else "does NOT hold")
    health = llc_health_report(llc_ds)
    chosen = calibration_report(open_dataset(calibration)) if calibration else None
    if health["counts"]["failed"] or health["counts"]["unreliable"]:
        logging.warning("LLC estimates not sound: %s", health["not_sound"])
    stamp = current_stamp()
    commit = stamp["git_commit"][:12] + (" (uncommitted changes or untracked files)" if stamp["git_dirty"] is True else "")
    footer = f"\n\n_Checked by rule `{stamp['rule']}` at commit {commit}, {stamp['created_utc']}._\n"
    trend = llc_over_training_report(llc_ds)
    for run in trend["runs"]:
        logging.info("LLC over training, M=%s: %s (last/first sound = %.3g)", run["M"], run["shape"], run["last_over_first"])
    markdown = claims_markdown(
        experiment, claims, llc_over_training_markdown(trend) + llc_sections_markdown(health, chosen)
    )
    Path(md).write_text(markdown.rstrip("\n") + footer)
    report = json.loads(claims_json(experiment, claims, {"llc_health": health, "llc_calibration": chosen, "llc_over_training": trend}))
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
