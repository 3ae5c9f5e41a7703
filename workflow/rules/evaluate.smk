rule evaluate:
    input:
        observation=OBSERVATION,
        run=RUN,
    output:
        METRICS,
    log:
        PATHS.log("evaluate", "{run}"),
    benchmark:
        PATHS.benchmark("evaluate", "{run}")
    conda:
        "../envs/dip.yaml"
    shell:
        "dip evaluate {input.run} --observation {input.observation} --out {output}"
        " --record-failure {log} > {log} 2>&1"


rule aggregate:
    input:
        metrics_files(),
    output:
        summary=PATHS.summary,
        traces=PATHS.traces,
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    conda:
        "../envs/dip.yaml"
    shell:
        "dip aggregate {input} --out {output.summary} --traces-out {output.traces} > {log} 2>&1"
