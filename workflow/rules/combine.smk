rule last_output:
    input:
        DIP_RUN,
    output:
        directory(LAST_RUN),
    log:
        PATHS.log("combine", LAST_RUN_NAME),
    conda:
        "../envs/dip.yaml"
    params:
        method=lambda wildcards: last_method(dip_method(wildcards.variant)),
    shell:
        "dip combine {input:q} --output last --method {params.method:q} --out {output:q}"
        " --record-failure {log:q} > {log:q} 2>&1"


rule seed_mean:
    input:
        seed_runs,
    output:
        directory(SEED_MEAN_RUN),
    log:
        PATHS.log("combine", SEED_MEAN_RUN_NAME),
    conda:
        "../envs/dip.yaml"
    params:
        method=lambda wildcards, input: mean_method(
            dip_method(wildcards.variant), len(input)
        ),
    shell:
        "dip combine {input:q} --method {params.method:q} --out {output:q}"
        " --record-failure {log:q} > {log:q} 2>&1"
