rule restore:
    input:
        OBSERVATION,
    output:
        directory(DIP_RUN),
    log:
        PATHS.log("restore", DIP_RUN_NAME),
    benchmark:
        PATHS.benchmark("restore", DIP_RUN_NAME)
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
        slots=slot_environment,
    shell:
        "{params.slots}dip restore {input} --out {output} --variant {wildcards.variant}"
        " --arch-json {params.arch:q} {params.fit}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads}"
        " --checkpoint {params.checkpoint} --quiet --record-failure {log} > {log} 2>&1"
