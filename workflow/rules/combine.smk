rule last_output:
    input:
        DIP_RUN,
    output:
        directory(LAST_RUN),
    log:
        "results/logs/combine/{dataset}/{task}/{level}/{image}/dip-{variant}/seed{seed}-last.log",
    conda:
        "../envs/dip.yaml"
    shell:
        "dip combine {input} --output last --method dip-{wildcards.variant}-last --out {output}"
        " --record-failure {log} > {log} 2>&1"


rule seed_mean:
    input:
        seed_runs,
    output:
        directory(SEED_MEAN_RUN),
    log:
        "results/logs/combine/{dataset}/{task}/{level}/{image}/dip-{variant}/seed-mean.log",
    conda:
        "../envs/dip.yaml"
    params:
        method=lambda wildcards, input: f"dip-{wildcards.variant}-mean{len(input)}",
    shell:
        "dip combine {input} --method {params.method} --out {output}"
        " --record-failure {log} > {log} 2>&1"
