"""Rule `claims`: check the paper's findings on this experiment's stores (reports, never fails).

With a seed axis every claim is checked on each train seed's runs and reported as
"holds in k of n seeds" with each seed's numbers; the LLC sections come once per seed.
The fitted predictor families follow as a report (transient_ridge.family_findings).
"""

import json
import logging
from pathlib import Path

import xarray as xr

from transient_ridge.claims import (
    Claim,
    check_claims,
    check_claims_over_seeds,
    claims_json,
    claims_markdown,
    seed_claims_json,
    seed_claims_markdown,
    summarize_over_seeds,
)
from transient_ridge.config import ExperimentConfig
from transient_ridge.family_findings import family_findings
from transient_ridge.llc import (
    calibration_report,
    llc_health_report,
    llc_over_training_markdown,
    llc_over_training_report,
    llc_sections_markdown,
    t_crit_markdown,
    t_crit_report,
)
from transient_ridge.provenance import current_stamp, start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.seeds import runs_by_M, select_seed
from transient_ridge.store import open_dataset


def observed_transience(claims: list[Claim]) -> dict[float, bool]:
    """Intermediate M → transient, as the tradeoff-prediction claim read it (empty without that claim)."""
    return {
        float(row["M"]): bool(row["observed"])
        for claim in claims if claim.name == "tradeoff_predicts_transience" for row in claim.evidence["prediction_rows"]
    }


def llc_sections(
    llc: xr.Dataset,
    outputs: dict,
    claims_by_seed: dict,
    chosen: dict | None,
    seeds: list[int] | None,
    calibration_seed: int | None = None,
) -> tuple[list[str], dict]:
    """Markdown lines and JSON of the LLC sections (over training, at t_crit against the end, health), per seed
    with a seed axis; ``claims_by_seed`` maps each seed (``None`` without a seed axis) to its claims."""
    extra: dict = {"llc_calibration": chosen}
    lines: list[str] = []
    for seed in seeds or [None]:
        one = llc if seed is None else select_seed(llc, seed)
        runs = outputs if seed is None else select_seed(outputs, seed)
        health = llc_health_report(one)
        trend = llc_over_training_report(one)
        at_t_crit = t_crit_report(one, runs)
        where = "" if seed is None else f" (train seed {seed})"
        if health["not_sound"]:
            logging.warning("LLC estimates not sound%s: %s", where,
                            [(r["M"], r["step"], r["status"]) for r in health["not_sound"]])
        for run in trend["runs"]:
            logging.info("LLC over training, M=%s%s: %s (last/first sound = %.3g)", run["M"], where, run["shape"],
                         run["last_over_first"])
        sections = llc_over_training_markdown(trend) + t_crit_markdown(at_t_crit, observed_transience(claims_by_seed[seed]))
        if seed is None:  # one seed: the calibration section sits after the others, as it always has
            lines += sections + llc_sections_markdown(health, chosen)
            extra.update(llc_health=health, llc_over_training=trend, llc_at_t_crit=at_t_crit)
        else:
            lines += ["", f"# LLC, train seed {seed}"] + sections + llc_sections_markdown(health, None)
            extra.setdefault("llc_health", {})[seed] = health
            extra.setdefault("llc_over_training", {})[seed] = trend
            extra.setdefault("llc_at_t_crit", {})[seed] = at_t_crit
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
    findings = family_findings(outputs)  # a report beside the claims, with or without a seed axis
    for row in findings.table:
        if row.probe == "ood":
            logging.info("M=%s at %s: nearest %s, %.0f %% nearer than ridge (median over seeds), beyond seed spread: %s",
                         row.M, row.point, row.nearest, 100 * row.relative_margin[0], row.beyond_seed_spread)
    if seed_axis:
        per_seed = check_claims_over_seeds(*stores, smoothing_window=window)
        summary = summarize_over_seeds(per_seed)
        for claim in summary:
            logging.info("%s: %s", claim.name, claim.verdict)
        seeds = sorted({s for c in summary for s in c.seeds})
        lines, extra = llc_sections(llc_ds, outputs, per_seed, chosen, seeds, cfg.seeds.calibration_seed)
        lines += findings.markdown
        extra["predictor_families"] = findings.report
        markdown = seed_claims_markdown(experiment, summary, lines)
        report = json.loads(seed_claims_json(experiment, summary, extra))
    else:
        claims = check_claims(*stores, smoothing_window=window)
        for claim in claims:
            logging.info("%s: %s", claim.name, "holds" if claim.holds else "does NOT hold")
        lines, extra = llc_sections(llc_ds, outputs, {None: claims}, chosen, None)
        lines += findings.markdown
        extra["predictor_families"] = findings.report
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
