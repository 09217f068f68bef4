# Every experiment is its own target rule (`snakemake -c 2 transient`); `all` is
# the mini experiment and `paper` is defined in the Snakefile.

for experiment_name in EXPERIMENTS:
    if experiment_name in ("paper", "all"):
        continue

    rule:
        name:
            experiment_name
        input:
            experiment_targets(experiment_name),


# `archive_<exp>` / `archive_<exp>_weights`: the experiment's archive (workflow/rules/archive.smk).
for experiment_name in EXPERIMENTS:

    rule:
        name:
            f"archive_{experiment_name}"
        input:
            f"archives/{experiment_name}.tar.gz",

    rule:
        name:
            f"archive_{experiment_name}_weights"
        input:
            f"archives/{experiment_name}-with-weights.tar.gz",
