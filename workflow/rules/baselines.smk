rule baseline:
    input:
        OBSERVATION,
    output:
        restored=f"{BASELINE_RUN}/restored.png",
        record=f"{BASELINE_RUN}/record.json",
    log:
        "results/logs/baseline/{dataset}/{task}/{level}/{image}/{method}.log",
    benchmark:
        "results/benchmarks/baseline/{dataset}/{task}/{level}/{image}/{method}.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        run_dir=lambda wildcards, output: os.path.dirname(output.record),
    shell:
        "dip baseline {input} --method {wildcards.method} --out {params.run_dir} > {log} 2>&1"
