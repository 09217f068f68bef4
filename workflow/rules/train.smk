# One training job per run: per M, and per train seed when seeds.train is a list
# (`run` is M16, or M16/s3). Resume state lives in runs/{run}/.resume/ (not a declared
# output), so `--rerun-incomplete` continues a killed job. With training.group_size > 1
# a group's first run (its leader) trains the whole group in one batched computation;
# the other members' jobs wait for it and publish what it staged for them.


rule train:
    input:
        unpack(get_train_inputs),
    output:
        checkpoints=directory("results/{exp}/runs/{run}/checkpoints"),
        predictions=directory("results/{exp}/runs/{run}/predictions.zarr"),
    params:
        settings=run_settings("train"),
    threads: 1
    priority: train_priority
    resources:
        gpu=1,
    log:
        "logs/{exp}/train/{run}.log",
    benchmark:
        "results/{exp}/benchmarks/train/{run}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/train.py"
