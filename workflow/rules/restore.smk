if not BATCHES:

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
            "{params.slots}dip restore {input:q} --out {output:q} --variant {wildcards.variant:q}"
            " --arch-json {params.arch:q} {params.fit} --seed {wildcards.seed:q}"
            " --device {params.device:q} --threads {threads} --checkpoint {params.checkpoint:q}"
            " --quiet --record-failure {log:q} > {log:q} 2>&1"

else:

    # batch_fits > 1: the fits of a batch run in one process (fit_batch); each run is then copied to its own place.
    rule fit_batch:
        input:
            batch_observations,
        output:
            directory(BATCH_RUN),
        log:
            "results/logs/restore/batches/{batch}.log",
        benchmark:
            "results/benchmarks/restore/batches/{batch}.tsv"
        retries: config["resources"]["retries"]
        conda:
            "../envs/dip.yaml"
        threads: config["threads"]
        resources:
            gpu=config["resources"]["gpu"],
            mem_mb=config["resources"]["mem_mb"],
            runtime=config["resources"]["runtime"],
        params:
            flags=batch_params,
            device=config["device"],
            checkpoint="results/.checkpoints/batches/{batch}",
            slots=slot_environment,
        shell:
            "{params.slots}dip restore {input:q} --out {output:q} {params.flags}"
            " --device {params.device:q} --threads {threads}"
            " --checkpoint {params.checkpoint:q} --quiet --record-failure {log:q} > {log:q} 2>&1"

    rule restore:
        input:
            batch_of,
        output:
            directory(DIP_RUN),
        log:
            PATHS.log("restore", DIP_RUN_NAME),
        localrule: True
        conda:
            "../envs/dip.yaml"
        params:
            run=f"{{dataset}}/{{task}}/{{level}}/{{image}}/{DIP_RUN_NAME}",
        shell:
            "cp -R {input:q}/{params.run:q} {output:q} > {log:q} 2>&1"
