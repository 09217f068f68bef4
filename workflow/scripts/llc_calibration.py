"""Rule `llc_calibration`: the calibration points stacked into one store, and the epsilon the rule chooses.

The fits ran in the `llc_calibration_point` jobs; this step reads their stores only (no torch)."""

from transient_ridge.config import ExperimentConfig
from transient_ridge.llc import combine_calibration_points
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.store import open_dataset, write_dataset


def main(experiment: str, block: dict, points: list[str], output: str) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    write_dataset(combine_calibration_points(cfg, [open_dataset(path) for path in points]), output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        list(snakemake.input),
        snakemake.output[0],
    )
