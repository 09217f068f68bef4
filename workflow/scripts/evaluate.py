"""Rule `evaluate`: per-checkpoint losses, distances and t_crit of one run."""

import logging

from transient_ridge.config import ExperimentConfig
from transient_ridge.evaluate import build_outputs_dataset
from transient_ridge.families import FamilyGrid
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.store import open_dataset, write_dataset


def main(experiment: str, block: dict, predictions_path: str, tasks_path: str, baselines_path: str, output: str) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    grid = FamilyGrid.from_config(cfg.families, cfg.data.noise_variance)
    dataset = build_outputs_dataset(
        open_dataset(predictions_path), open_dataset(tasks_path), open_dataset(baselines_path), grid
    )
    logging.info(
        "M=%s: final OOD loss %.4f, t_crit %d, final dist ridge %.4f dMMSE %.4f",
        dataset.attrs["M"],
        float(dataset["loss_ood"][-1]),
        dataset.attrs["t_crit"],
        float(dataset["dist_ridge"][-1]),
        float(dataset["dist_dmmse"][-1]),
    )
    final = dataset.isel(step=-1).sel(probe="ood")
    logging.info(
        "M=%s: final OOD distance to ridge %.4f, nearest ridge_lambda %.4f (lambda %.3g), nearest GD-k %.4f "
        "(k %d, eta %.3g)",
        dataset.attrs["M"],
        float(final["family_dist"].sel(family="ridge")),
        float(final["family_dist"].sel(family="ridge_lambda")),
        float(final["fit_ridge_penalty"]),
        float(final["family_dist"].sel(family="gd_k")),
        int(final["fit_gd_steps"]) if final["fit_gd_steps"].notnull() else -1,
        float(final["fit_gd_step_size"]),
    )
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        snakemake.input.predictions,
        snakemake.input.tasks,
        snakemake.input.baselines,
        snakemake.output[0],
    )
