# Task sequence, probe sets and the idealized predictors on them.


rule tasks:
    output:
        directory("results/{exp}/data/tasks.zarr"),
    params:
        settings=stage_settings("tasks"),
    log:
        "logs/{exp}/tasks.log",
    benchmark:
        "results/{exp}/benchmarks/tasks.tsv"
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
    log:
        "logs/{exp}/baselines.log",
    benchmark:
        "results/{exp}/benchmarks/baselines.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/baselines.py"
