rule baseline:
    input:
        OBSERVATION,
    output:
        directory(BASELINE_RUN),
    log:
        "results/logs/baseline/{dataset}/{task}/{level}/{image}/{method}.log",
    benchmark:
        "results/benchmarks/baseline/{dataset}/{task}/{level}/{image}/{method}.tsv"
    conda:
        "../envs/dip.yaml"
    shell:
        "dip baseline {input} --method {wildcards.method} --out {output}"
        " --record-failure {log} > {log} 2>&1"
