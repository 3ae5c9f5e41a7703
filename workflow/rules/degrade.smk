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
        "dip degrade {params.image} --task {wildcards.task} --level {wildcards.level} {params.flags}"
        " --seed {params.seed} --label dataset={wildcards.dataset} --label source={params.source:q}"
        " --label image={wildcards.image}"
        " --label observation_dir={output} --out {output} --record-failure {log} > {log} 2>&1"
