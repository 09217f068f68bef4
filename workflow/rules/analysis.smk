# Per-checkpoint metrics per run, and the joint trajectory PCA of all runs (and seeds).


rule evaluate:
    input:
        predictions="results/{exp}/runs/{run}/predictions.zarr",
        tasks=get_tasks_store,
        baselines=get_baselines_store,
    output:
        directory("results/{exp}/runs/{run}/outputs.zarr"),
    params:
        settings=stage_settings("evaluate"),
    priority: 2  # a second or two that the figures wait for: done as soon as ready, beside the long jobs
    log:
        "logs/{exp}/evaluate/{run}.log",
    benchmark:
        "results/{exp}/benchmarks/evaluate/{run}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/evaluate.py"


rule pca:
    input:
        outputs=get_outputs_stores,
        baselines=get_baselines_store,
    output:
        directory("results/{exp}/pca.zarr"),
    params:
        settings=stage_settings("pca"),
    priority: 2  # a second or two that the figures wait for: done as soon as ready, beside the long jobs
    log:
        "logs/{exp}/pca.log",
    benchmark:
        "results/{exp}/benchmarks/pca.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/pca.py"
