# Rebuilds every figure of Carroll et al. 2025 (transient ridge) and the
# LLC-over-training analysis of Hoogland et al. 2024. See README.md.
from snakemake.utils import min_version

min_version("9.19")


configfile: f"{workflow.basedir}/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/llc.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/archive.smk"


rule all:
    input:
        experiment_targets("mini"),
    default_target: True


rule paper:
    input:
        experiment_targets("paper"),


include: "workflow/rules/targets.smk"


onstart:
    # the package's bytecode, once, so that no job compiles it again (PYTHONDONTWRITEBYTECODE)
    byte_compile_package()
