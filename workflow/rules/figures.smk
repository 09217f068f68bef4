# One rule per figure (rule name = figure name), drawn only from the zarr stores.
# Time-series figures also get an unsmoothed variant `<name>_raw` under figures/raw/.

for figure_name in FIGURE_NAMES:

    rule:
        name:
            figure_name
        input:
            unpack(figure_inputs(figure_name)),
        output:
            pdf=f"results/{{exp}}/figures/{figure_name}.pdf",
            png=report(
                f"results/{{exp}}/figures/{figure_name}.png",
                caption=f"../report/{figure_name}.rst",
                category="{exp}",
                subcategory="figures",
                labels=figure_report_labels(figure_name),
            ),
        localrule: True
        params:
            figure=figure_name,
            settings=figure_settings(raw=False),
        log:
            f"logs/{{exp}}/figures/{figure_name}.log",
        benchmark:
            f"results/{{exp}}/benchmarks/figures/{figure_name}.tsv"
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
            pdf=f"results/{{exp}}/figures/raw/{figure_name}.pdf",
            png=f"results/{{exp}}/figures/raw/{figure_name}.png",
        localrule: True
        params:
            figure=figure_name,
            settings=figure_settings(raw=True),
        log:
            f"logs/{{exp}}/figures/raw/{figure_name}.log",
        benchmark:
            f"results/{{exp}}/benchmarks/figures/raw/{figure_name}.tsv"
        conda:
            "../../envs/pipeline.yaml"
        script:
            "../scripts/plot_figure.py"
