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
