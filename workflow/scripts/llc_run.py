"""Rule `llc_run`: LLC of one run at the selected checkpoints (ε from the calibration when `auto`).

With a seed axis the run's own SGLD seed (paired with its train seed) drives the chains,
and the store records the run's train seed as the attribute ``train_seed``."""

import logging

from transient_ridge.config import ExperimentConfig
from transient_ridge.llc import build_run_llc_dataset
from transient_ridge.provenance import start_job
from transient_ridge.runtime import claim_device, configure_logging, set_threads
from transient_ridge.store import open_dataset, write_dataset
from transient_ridge.tasks import tasks_from_dataset


def main(
    experiment: str, block: dict, run: str, checkpoints: str, tasks_path: str, output: str, threads: int,
    calibration: str | None = None,
) -> None:
    experiment_cfg = ExperimentConfig.from_dict(experiment, block)
    M, seed = experiment_cfg.parse_run(run)
    cfg = experiment_cfg.for_seed(seed)
    set_threads(threads)
    tasks = tasks_from_dataset(open_dataset(tasks_path))
    epsilon, source, chosen = None, "config", None
    if cfg.llc.epsilon_is_auto:
        if calibration is None:
            raise ValueError(f"experiments.{experiment}.llc.epsilon is 'auto' but no llc_calibration store was given")
        chosen = open_dataset(calibration)
        epsilon = float(chosen["chosen_epsilon"])
        source = f"calibration ({calibration})"
        logging.info("llc.epsilon: auto -> %g from %s (%s)", epsilon, calibration, chosen.attrs.get("choice_reason"))
    with claim_device() as device:
        dataset = build_run_llc_dataset(
            cfg, M, checkpoints, tasks, device=device, epsilon=epsilon, epsilon_source=source, calibration=chosen
        )
    dataset.attrs["train_seed"] = int(cfg.seeds.train)
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        snakemake.wildcards.run,
        snakemake.input.checkpoints,
        snakemake.input.tasks,
        snakemake.output[0],
        snakemake.threads,
        snakemake.input.get("calibration"),
    )
