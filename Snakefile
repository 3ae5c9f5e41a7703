"""dip-bench: a reproducible benchmark of Deep Image Prior (Ulyanov et al., CVPR 2018)."""

from snakemake.utils import min_version

min_version("9.0")


# The default config, unless one is given (--configfile would otherwise be merged into it, datasets and all).
if not config:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/degrade.smk"
include: "workflow/rules/restore.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    export_image,
    aggregate,
    render,


rule all:
    default_target: True
    input:
        all_targets(),
