rule evaluate:
    input:
        observation=OBSERVATION,
        restored="results/{dataset}/{task}/{level}/{image}/{run}/restored.png",
        record="results/{dataset}/{task}/{level}/{image}/{run}/record.json",
    output:
        "results/{dataset}/{task}/{level}/{image}/{run}/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{task}/{level}/{image}/{run}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}/{task}/{level}/{image}/{run}.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        run_dir=lambda wildcards, input: os.path.dirname(input.record),
    shell:
        "dip evaluate {params.run_dir} --observation {input.observation} --out {output} > {log} 2>&1"


rule aggregate:
    input:
        metrics=metrics_files(),
        traces=run_files(f"{DIP_RUN}/trace.csv", DIP_RUNS),
    output:
        summary="results/summary.csv",
        traces="results/traces.csv",
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    conda:
        "../envs/dip.yaml"
    shell:
        "dip aggregate {input.metrics} --out {output.summary} --traces-out {output.traces} > {log} 2>&1"
