"""Rule `baselines`: ridge and dMMSE_M predictions and per-token losses on every probe set."""

import logging

from transient_ridge.baselines import build_baselines_dataset
from transient_ridge.config import ExperimentConfig
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.store import open_dataset, write_dataset


def main(experiment: str, block: dict, tasks_path: str, output: str) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    dataset = build_baselines_dataset(
        open_dataset(tasks_path),
        chunk_size=cfg.probes.dmmse_chunk,
        ridge_penalties=cfg.families.penalties(cfg.data.noise_variance),
    )
    logging.info("ridge OOD loss per token: %s", dataset["loss_ridge_ood"].values.round(4).tolist())
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(snakemake.wildcards.exp, snakemake.config["experiments"][snakemake.wildcards.exp], snakemake.input.tasks, snakemake.output[0])
