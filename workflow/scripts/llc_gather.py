"""Rule `llc`: gather the per-run LLC stores into one llc.zarr with an M dim (and a seed dim
when the experiment lists several train seeds)."""

import logging

from transient_ridge.config import ExperimentConfig
from transient_ridge.llc import gather_llc_datasets
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.store import open_dataset, write_dataset


def main(paths: list[str], output: str, seed_axis: bool = False) -> None:
    datasets = [open_dataset(path) for path in paths]
    dataset = gather_llc_datasets(datasets, seed_axis=seed_axis)
    logging.info("final-checkpoint LLC by M: %s", dataset["llc_mean"].isel(step=-1).round(3).values.tolist())
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    experiment = ExperimentConfig.from_dict(snakemake.wildcards.exp, snakemake.config["experiments"][snakemake.wildcards.exp])
    main(list(snakemake.input), snakemake.output[0], experiment.seeds.has_seed_axis)
