# Per-checkpoint metrics per run, and the joint trajectory PCA of all runs.


rule evaluate:
    input:
        predictions="results/{exp}/runs/M{M}/predictions.zarr",
        tasks=get_tasks_store,
        baselines=get_baselines_store,
    output:
        directory("results/{exp}/runs/M{M}/outputs.zarr"),
    log:
        "logs/{exp}/evaluate/M{M}.log",
    benchmark:
        "results/{exp}/benchmarks/evaluate/M{M}.tsv"
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
    log:
        "logs/{exp}/pca.log",
    benchmark:
        "results/{exp}/benchmarks/pca.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/pca.py"
