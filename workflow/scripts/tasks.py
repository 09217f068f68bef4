"""Rules `tasks` and `run_tasks`: write the nested task sequence and the fixed probe sets
(of the whole grid, or of one run when the rule has an ``M`` wildcard)."""

import logging

from transient_ridge.config import ExperimentConfig, parse_task_count
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.store import write_dataset
from transient_ridge.tasks import build_tasks_dataset


def main(experiment: str, block: dict, output: str, M_label: str | None = None) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    if M_label is not None:
        cfg = cfg.for_run(parse_task_count(M_label))
    dataset = build_tasks_dataset(cfg)
    logging.info("%s: %d tasks, probe sets %s", experiment, dataset.sizes["task"], dict(dataset.sizes))
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        snakemake.output[0],
        getattr(snakemake.wildcards, "M", None),
    )
