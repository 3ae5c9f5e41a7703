rule baseline:
    input:
        OBSERVATION,
    output:
        directory(BASELINE_RUN),
    log:
        PATHS.log("baseline", "{method}"),
    benchmark:
        PATHS.benchmark("baseline", "{method}")
    conda:
        "../envs/dip.yaml"
    shell:
        "dip baseline {input} --method {wildcards.method} --out {output}"
        " --record-failure {log} > {log} 2>&1"
