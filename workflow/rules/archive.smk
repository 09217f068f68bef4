# One archive of an experiment's results (stores, figures, claims, benchmarks, logs and
# Snakemake's records of them), to restore in another clone without retraining:
#   snakemake -c 1 archive_mini           -> archives/mini.tar.gz (no model weights)
#   snakemake -c 1 archive_mini_weights   -> archives/mini-with-weights.tar.gz
#   python -m transient_ridge.archive restore archives/mini.tar.gz   (in the other clone)


def archive_inputs(weights):
    """Everything the archive holds must be built first: the experiment's targets (and weights)."""

    def inputs(wildcards):
        weight_folders = [f"{run_dir(wildcards.exp, run)}/checkpoints" for run in run_labels(wildcards.exp)]
        return [*experiment_targets(wildcards.exp), *(weight_folders if weights else [])]

    return inputs


for archive_rule, with_weights, suffix in (("archive", False, ""), ("archive_weights", True, "-with-weights")):

    rule:
        name:
            archive_rule
        input:
            archive_inputs(with_weights),
        output:
            f"archives/{{exp}}{suffix}.tar.gz",
        params:
            weights=with_weights,
        localrule: True
        log:
            f"logs/archives/{{exp}}{suffix}.log",  # not under logs/{exp}/, which the archive packs
        benchmark:
            f"archives/benchmarks/{{exp}}{suffix}.tsv"
        conda:
            "../../envs/pipeline.yaml"
        script:
            "../scripts/archive.py"
