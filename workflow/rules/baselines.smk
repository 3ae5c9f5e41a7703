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
        "dip baseline {input:q} --method {wildcards.method:q} --out {output:q}"
        " --record-failure {log:q} > {log:q} 2>&1"
