"""Rule `llc`: gather the per-run LLC stores into one llc.zarr with an M dim."""

import logging

from transient_ridge.llc import gather_llc_datasets
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.store import open_dataset, write_dataset


def main(paths: list[str], output: str) -> None:
    dataset = gather_llc_datasets(open_dataset(path) for path in paths)
    logging.info("final-checkpoint LLC by M: %s", dataset["llc_mean"].isel(step=-1).round(3).values.tolist())
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(list(snakemake.input), snakemake.output[0])
