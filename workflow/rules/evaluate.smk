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
        "dip evaluate {input.run:q} --observation {input.observation:q} --out {output:q}"
        " --record-failure {log:q} > {log:q} 2>&1"


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
        "dip aggregate {input:q} --out {output.summary:q} --traces-out {output.traces:q} > {log:q} 2>&1"
