"""Rule `llc_calibration`: epsilon (x gamma) sweep of the LLC at a few checkpoints of a few runs; chooses epsilon.

With a seed axis it measures the runs of the first train seed, with that seed's SGLD seed."""

from transient_ridge.config import ExperimentConfig
from transient_ridge.llc import build_calibration_dataset
from transient_ridge.provenance import start_job
from transient_ridge.runtime import claim_device, configure_logging, set_threads
from transient_ridge.store import open_dataset, write_dataset
from transient_ridge.tasks import tasks_from_dataset


def main(experiment: str, block: dict, checkpoint_dirs: list[str], tasks_path: str, output: str, threads: int) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    set_threads(threads)
    # the rule lists the checkpoint folders in the order of llc.calibration.M
    by_M = dict(zip(cfg.llc.calibration.M, checkpoint_dirs))
    tasks = tasks_from_dataset(open_dataset(tasks_path))
    with claim_device() as device:
        dataset = build_calibration_dataset(cfg, by_M, tasks, device=device)
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        list(snakemake.input.checkpoints),
        snakemake.input.tasks,
        snakemake.output[0],
        snakemake.threads,
    )
