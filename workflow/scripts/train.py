"""Rule `train`: train one run (one M, and one train seed with a seed axis), resuming from
runs/{run}/.resume/ if present."""

import logging
from pathlib import Path

from transient_ridge.config import ExperimentConfig
from transient_ridge.provenance import start_job
from transient_ridge.runtime import claim_device, configure_logging, set_threads
from transient_ridge.store import open_dataset
from transient_ridge.tasks import tasks_from_dataset
from transient_ridge.train import ProbeInputs, train_run


def main(experiment: str, block: dict, run: str, tasks_path: str, checkpoints_dir: str, threads: int) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    M, seed = cfg.parse_run(run)
    set_threads(threads)
    tasks_dataset = open_dataset(tasks_path)
    with claim_device() as device:
        logging.info("%s run %s on %s with %d thread(s)", experiment, run, device, threads)
        train_run(
            cfg.for_seed(seed),
            M,
            tasks_from_dataset(tasks_dataset),
            ProbeInputs.from_tasks_dataset(tasks_dataset, M),
            Path(checkpoints_dir).parent,
            device=device,
        )


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        snakemake.wildcards.run,
        snakemake.input.tasks,
        snakemake.output.checkpoints,
        snakemake.threads,
    )
