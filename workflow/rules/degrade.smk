rule degrade:
    input:
        "results/{dataset}/images/{image}.png",
    output:
        directory(OBSERVATION),
    log:
        "results/logs/degrade/{dataset}/{task}/{level}/{image}.log",
    benchmark:
        "results/benchmarks/degrade/{dataset}/{task}/{level}/{image}.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        seed=config["degradation_seed"],
    shell:
        "dip degrade {input} --task {wildcards.task} --level {wildcards.level}"
        " --seed {params.seed} --label dataset={wildcards.dataset} --label image={wildcards.image}"
        " --label observation_dir={output} --out {output} > {log} 2>&1"
