# Local learning coefficients: per run at selected checkpoints, gathered into one
# store, and the calibration that sweeps epsilon at a few checkpoints of a few runs
# (of the first train seed, with a seed axis) and chooses it (llc_run reads the
# choice when llc.epsilon is "auto"). Each calibration point (run x checkpoint) is
# its own job, so the points run side by side and start as soon as their run is
# trained; llc_calibration only stacks them and applies the rule.


rule llc_run:
    input:
        unpack(get_llc_run_inputs),
    output:
        directory("results/{exp}/runs/{run}/llc.zarr"),
    params:
        settings=run_settings("llc_run"),
    threads: 1
    priority: 1  # before figures that do not need the LLC: the LLC figures and claims wait for these
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


rule llc_calibration_point:
    input:
        checkpoints=get_calibration_point_checkpoints,
        tasks=get_run_tasks_store,
    output:
        directory("results/{exp}/llc_calibration/{run}/step{step}.zarr"),
    params:
        settings=calibration_settings,
    threads: 1
    priority: 2  # first when ready: every llc_run waits for the calibration
    resources:
        gpu=1,
    log:
        "logs/{exp}/llc_calibration/{run}/step{step}.log",
    benchmark:
        "results/{exp}/benchmarks/llc_calibration/{run}/step{step}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/llc_calibration_point.py"


rule llc_calibration:
    input:
        get_calibration_points,
    localrule: True
    output:
        directory("results/{exp}/llc_calibration.zarr"),
    params:
        settings=calibration_settings,
    log:
        "logs/{exp}/llc_calibration.log",
    benchmark:
        "results/{exp}/benchmarks/llc_calibration.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/llc_calibration.py"
