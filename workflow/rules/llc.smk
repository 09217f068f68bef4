# Local learning coefficients: per run at selected checkpoints, gathered into one
# store, and the calibration that sweeps epsilon at a few checkpoints of a few runs
# (of the first train seed, with a seed axis) and chooses it (llc_run reads the
# choice when llc.epsilon is "auto").


rule llc_run:
    input:
        unpack(get_llc_run_inputs),
    output:
        directory("results/{exp}/runs/{run}/llc.zarr"),
    params:
        settings=run_settings("llc_run"),
    threads: 1
    resources:
        gpu=1,
    log:
        "logs/{exp}/llc/{run}.log",
    benchmark:
        "results/{exp}/benchmarks/llc/{run}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/llc_run.py"


rule llc:
    input:
        get_llc_run_stores,
    localrule: True
    output:
        directory("results/{exp}/llc.zarr"),
    log:
        "logs/{exp}/llc.log",
    benchmark:
        "results/{exp}/benchmarks/llc.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/llc_gather.py"


rule llc_calibration:
    input:
        checkpoints=get_calibration_checkpoints,
        tasks=get_tasks_store,
    output:
        directory("results/{exp}/llc_calibration.zarr"),
    params:
        settings=calibration_settings,
    threads: 1
    resources:
        gpu=1,
    log:
        "logs/{exp}/llc_calibration.log",
    benchmark:
        "results/{exp}/benchmarks/llc_calibration.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/llc_calibration.py"
