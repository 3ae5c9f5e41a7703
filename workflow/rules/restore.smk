rule restore:
    input:
        OBSERVATION,
    output:
        directory(DIP_RUN),
    log:
        "results/logs/restore/{dataset}/{task}/{level}/{image}/dip-{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/restore/{dataset}/{task}/{level}/{image}/dip-{variant}/seed{seed}.tsv"
    retries: config["resources"]["retries"]
    conda:
        "../envs/dip.yaml"
    threads: config["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"],
    params:
        arch=arch_json,
        fit=fit_flags,
        device=config["device"],
        checkpoint=checkpoint_file,
    shell:
        "dip restore {input} --out {output} --variant {wildcards.variant}"
        " --arch-json {params.arch:q} {params.fit}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads}"
        " --checkpoint {params.checkpoint} --quiet --record-failure {log} > {log} 2>&1"
