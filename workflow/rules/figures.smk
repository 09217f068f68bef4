# The figures, drawn only from the zarr stores, in groups (transient_ridge.figures.FIGURE_GROUPS):
# one job per group, so each group pays one Python start-up and opens each store once. Every
# figure is still its own target file (asking for one draws its group). A group needs exactly the
# upstream jobs of its members: the runs' figures, the PCA's, the LLC's and the calibration's.
# Time-series figures also get an unsmoothed variant `<name>_raw` under figures/raw/, one rule each (a group of one).

for group_name, group_figures in FIGURE_GROUPS.items():

    rule:
        name:
            group_name
        input:
            unpack(figure_group_inputs(group_figures)),
        output:
            **figure_group_outputs(group_figures),
        localrule: True
        priority: figure_group_priority(group_figures)  # the LLC's figures 1, the others 0: see common.smk
        params:
            figures=list(group_figures),
            settings=figure_settings(raw=False),
        log:
            f"logs/{{exp}}/figures/{group_name}.log",
        benchmark:
            f"results/{{exp}}/benchmarks/figures/{group_name}.tsv"
        conda:
            "../../envs/pipeline.yaml"
        script:
            "../scripts/plot_figure.py"


for figure_name in TIME_SERIES_FIGURES:

    rule:
        name:
            f"{figure_name}_raw"
        input:
            unpack(figure_inputs(figure_name)),
        output:
            **{f"{figure_name}_{ext}": figure_file("{exp}", figure_name, ext, raw=True) for ext in ("pdf", "png")},
        localrule: True
        params:
            figures=[figure_name],
            settings=figure_settings(raw=True),
        log:
            f"logs/{{exp}}/figures/raw/{figure_name}.log",
        benchmark:
            f"results/{{exp}}/benchmarks/figures/raw/{figure_name}.tsv"
        conda:
            "../../envs/pipeline.yaml"
        script:
            "../scripts/plot_figure.py"
