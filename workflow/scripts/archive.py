"""Rules `archive` and `archive_weights`: one tar.gz of an experiment's results with a checksummed manifest."""

import logging

from transient_ridge.archive import create_archive
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging

if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    # the archive rule runs after the experiment's targets: its results match this config
    experiment_config = snakemake.config["experiments"][snakemake.wildcards.exp]
    path = create_archive(
        snakemake.wildcards.exp, snakemake.output[0], weights=snakemake.params.weights, config=experiment_config
    )
    logging.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
