"""Rule `evaluate`: per-checkpoint losses, distances and t_crit of one run."""

import logging

from transient_ridge.evaluate import build_outputs_dataset
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.store import open_dataset, write_dataset


def main(predictions_path: str, tasks_path: str, baselines_path: str, output: str) -> None:
    dataset = build_outputs_dataset(
        open_dataset(predictions_path), open_dataset(tasks_path), open_dataset(baselines_path)
    )
    logging.info(
        "M=%s: final OOD loss %.4f, t_crit %d, final dist ridge %.4f dMMSE %.4f",
        dataset.attrs["M"],
        float(dataset["loss_ood"][-1]),
        dataset.attrs["t_crit"],
        float(dataset["dist_ridge"][-1]),
        float(dataset["dist_dmmse"][-1]),
    )
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(snakemake.input.predictions, snakemake.input.tasks, snakemake.input.baselines, snakemake.output[0])
