"""dip-bench: a reproducible benchmark of Deep Image Prior (Ulyanov et al., CVPR 2018)."""

from snakemake.utils import min_version

min_version("9.0")


# The default config, unless --configfile gives one (which would otherwise be merged into it, datasets and all);
# `--config KEY=VALUE` alone still overrides keys of the default.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/degrade.smk"
include: "workflow/rules/restore.smk"
include: "workflow/rules/combine.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/viewer.smk"


localrules:
    all,
    export_image,
    last_output,
    seed_mean,
    aggregate,
    render,
    publish,
    viewer,


rule all:
    default_target: True
    input:
        all_targets(),


onsuccess:
    report_failures(PATHS.summary)
