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
        image=lambda wildcards, input: image_file(input.image, wildcards.image),
        flags=degrade_flags,
    shell:
        "dip degrade {params.image:q} --task {wildcards.task:q} --level {wildcards.level:q} {params.flags}"
        " --seed {params.seed} --label dataset={wildcards.dataset:q} --label source={params.source:q}"
        " --label image={wildcards.image:q} --label observation_dir={output:q} --out {output:q}"
        " --record-failure {log:q} > {log:q} 2>&1"
