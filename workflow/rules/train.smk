# One training job per task diversity M. Resume state lives in runs/M{M}/.resume/
# (not a declared output), so `--rerun-incomplete` continues a killed job.


rule train:
    input:
        tasks=get_run_tasks_store,
    output:
        checkpoints=directory("results/{exp}/runs/M{M}/checkpoints"),
        predictions=directory("results/{exp}/runs/M{M}/predictions.zarr"),
    params:
        settings=run_settings("train"),
    threads: 1
    resources:
        gpu=1,
    log:
        "logs/{exp}/train/M{M}.log",
    benchmark:
        "results/{exp}/benchmarks/train/M{M}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/train.py"
