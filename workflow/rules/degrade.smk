rule degrade:
    input:
        unpack(degrade_inputs),
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
        source=lambda wildcards: config["datasets"][wildcards.dataset]["source"],
        mask=degrade_flags,
    shell:
        "dip degrade {input.image} --task {wildcards.task} --level {wildcards.level} {params.mask}"
        " --seed {params.seed} --label dataset={wildcards.dataset} --label source={params.source:q}"
        " --label image={wildcards.image}"
        " --label observation_dir={output} --out {output} > {log} 2>&1"
