"""Rule `llc_run`: LLC of one run at the selected checkpoints (ε from the calibration when `auto`)."""

import logging

from transient_ridge.config import ExperimentConfig, parse_task_count
from transient_ridge.llc import build_run_llc_dataset
from transient_ridge.provenance import start_job
from transient_ridge.runtime import claim_device, configure_logging, set_threads
from transient_ridge.store import open_dataset, write_dataset
from transient_ridge.tasks import tasks_from_dataset


def main(
    experiment: str, block: dict, M_label: str, checkpoints: str, tasks_path: str, output: str, threads: int,
    calibration: str | None = None,
) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    set_threads(threads)
    tasks = tasks_from_dataset(open_dataset(tasks_path))
    epsilon, source = None, "config"
    if cfg.llc.epsilon_is_auto:
        if calibration is None:
            raise ValueError(f"experiments.{experiment}.llc.epsilon is 'auto' but no llc_calibration store was given")
        chosen = open_dataset(calibration)
        epsilon = float(chosen["chosen_epsilon"])
        source = f"calibration ({calibration})"
        logging.info("llc.epsilon: auto -> %g from %s (%s)", epsilon, calibration, chosen.attrs.get("choice_reason"))
    with claim_device() as device:
        dataset = build_run_llc_dataset(
            cfg, parse_task_count(M_label), checkpoints, tasks, device=device, epsilon=epsilon, epsilon_source=source
        )
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        snakemake.wildcards.M,
        snakemake.input.checkpoints,
        snakemake.input.tasks,
        snakemake.output[0],
        snakemake.threads,
        snakemake.input.get("calibration"),
    )
