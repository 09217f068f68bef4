"""Rule `pca`: joint trajectory PCA of every run's (and every seed's) root-batch predictions."""

import logging

from transient_ridge.config import ExperimentConfig
from transient_ridge.pca import build_pca_dataset
from transient_ridge.provenance import start_job
from transient_ridge.runtime import configure_logging
from transient_ridge.seeds import runs_by_M
from transient_ridge.store import open_dataset, write_dataset


def main(experiment: str, block: dict, outputs_paths: list[str], baselines_path: str, output: str) -> None:
    cfg = ExperimentConfig.from_dict(experiment, block)
    runs = [open_dataset(path) for path in outputs_paths]
    outputs = runs_by_M(
        [run[["pred_root"]].assign_attrs(run.attrs) for run in runs], seed_axis=cfg.seeds.has_seed_axis
    )
    dataset = build_pca_dataset(outputs, open_dataset(baselines_path), n_components=cfg.pca.n_components)
    logging.info("explained variance ratio: %s", dataset["explained_variance_ratio"].values.round(4).tolist())
    write_dataset(dataset, output)


if "snakemake" in globals():
    configure_logging(snakemake.log[0])
    start_job(snakemake)
    main(
        snakemake.wildcards.exp,
        snakemake.config["experiments"][snakemake.wildcards.exp],
        list(snakemake.input.outputs),
        snakemake.input.baselines,
        snakemake.output[0],
    )
