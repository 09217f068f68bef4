"""Rule `llc_calibration_point`: the epsilon (x gamma) sweep of the LLC at one checkpoint of one calibration run.

With a seed axis the run belongs to the first train seed and uses that seed's SGLD seed."""

from transient_ridge.config import ExperimentConfig
from transient_ridge.llc import build_calibration_point
from transient_ridge.provenance import start_job
from transient_ridge.runtime import claim_device, configure_logging, set_threads
from transient_ridge.store import open_dataset, write_dataset
from transient_ridge.tasks import tasks_from_dataset


def main(
    experiment: str, block: dict, run: str, step: int, checkpoints: str, tasks_path: str, output: str, threads: int
) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    M, _ = cfg.parse_run(run)
    set_threads(threads)
    tasks = tasks_from_dataset(open_dataset(tasks_path))
    with claim_device() as device:
        dataset = build_calibration_point(cfg, M, step, checkpoints, tasks, device=device)
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        snakemake.wildcards.run,
        int(snakemake.wildcards.step),
        snakemake.input.checkpoints,
        snakemake.input.tasks,
        snakemake.output[0],
        snakemake.threads,
    )
