# Task sequence, probe sets and the idealized predictors on them.


rule tasks:
    output:
        directory("results/{exp}/data/tasks.zarr"),
    params:
        settings=stage_settings("tasks"),
    priority: 2  # a second or two that the figures wait for: done as soon as ready, beside the long jobs
    log:
        "logs/{exp}/tasks.log",
    benchmark:
        "results/{exp}/benchmarks/tasks.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/tasks.py"


# The same content for one run alone (its T_M prefix and its own probe set, which
# do not depend on the rest of the grid). Training and LLC read this, so adding
# an M to the grid rewrites tasks.zarr but retrains only the new run.


rule run_tasks:
    output:
        directory("results/{exp}/data/runs/M{M}/tasks.zarr"),
    params:
        settings=run_settings("tasks"),
    priority: 3  # a second or two each: done first, every train job is ready to be chosen by its priority
    log:
        "logs/{exp}/tasks/M{M}.log",
    benchmark:
        "results/{exp}/benchmarks/tasks/M{M}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/tasks.py"


rule baselines:
    input:
        tasks=get_tasks_store,
    output:
        directory("results/{exp}/baselines.zarr"),
    params:
        settings=stage_settings("baselines"),
    priority: 2  # a second or two that the figures wait for: done as soon as ready, beside the long jobs
    log:
        "logs/{exp}/baselines.log",
    benchmark:
        "results/{exp}/benchmarks/baselines.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/baselines.py"
