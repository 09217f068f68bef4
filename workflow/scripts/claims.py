"""Rule `claims`: check the paper's findings on this experiment's stores (reports, never fails).

The fitted predictor families follow the claims as a report section (transient_ridge.family_findings).
"""

import logging
from pathlib import Path

from transient_ridge.claims import claims_report
from transient_ridge.config import ExperimentConfig
from transient_ridge.family_findings import FINDINGS_TITLE, family_findings
from transient_ridge.llc import calibration_report
from transient_ridge.provenance import current_stamp, start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.seeds import runs_by_M
from transient_ridge.store import open_dataset


def main(experiment, block, outputs, baselines, pca, llc, md, json_path, calibration=None) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    runs = runs_by_M([open_dataset(p).drop_vars("pred_root") for p in outputs], seed_axis=cfg.seeds.has_seed_axis)
    report = claims_report(
        experiment, runs, open_dataset(baselines), open_dataset(pca), open_dataset(llc),
        smoothing_window=cfg.figures.smoothing_window, calibration_seed=cfg.seeds.calibration_seed,
        calibration=calibration_report(open_dataset(calibration)) if calibration else None,
    )
    findings = family_findings(runs)
    report.add("predictor_families", FINDINGS_TITLE, findings.markdown, findings.report)
    logging.info("%s", report.headline())
    for claim in report.summary:
        logging.info("%s: %s", claim.name, claim.line)
    for row in (row for row in findings.table if row.probe == "ood"):
        logging.info("M=%s at %s (OOD): nearest family %s, %.0f %% nearer than ridge (median over seeds), beyond the "
                     "seed spread: %s; nearest overall %s", row.M, row.point, ", ".join(row.nearest),
                     100 * row.relative_margin[0], row.beyond_seed_spread, ", ".join(row.nearest_overall))
    stamp = current_stamp()
    dirty = " (uncommitted changes or untracked files)" if stamp["git_dirty"] is True else ""
    footer = f"\n_Checked by rule `{stamp['rule']}` at commit {stamp['git_commit'][:12]}{dirty}, {stamp['created_utc']}._\n"
    Path(md).write_text(report.markdown() + footer)
    Path(json_path).write_text(report.json(provenance=stamp))


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(snakemake.wildcards.exp, snakemake.config["experiments"][snakemake.wildcards.exp], list(snakemake.input.outputs),
         snakemake.input.baselines, snakemake.input.pca, snakemake.input.llc, snakemake.output.md, snakemake.output.json,
         snakemake.input.get("calibration"))
