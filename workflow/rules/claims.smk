# Checks the paper's findings on the experiment's own stores; reports, never fails.


rule claims:
    input:
        unpack(get_claims_inputs),
    output:
        md=report(
            "results/{exp}/claims.md",
            caption="../report/claims.rst",
            category="{exp}",
            subcategory="claims",
            labels=claims_report_labels,
        ),
        json="results/{exp}/claims.json",
    localrule: True
    params:
        settings=stage_settings("claims"),
    log:
        "logs/{exp}/claims.log",
    benchmark:
        "results/{exp}/benchmarks/claims.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/claims.py"
