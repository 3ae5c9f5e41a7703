rule baseline:
    input:
        OBSERVATION,
    output:
        directory(BASELINE_RUN),
    log:
        PATHS.log("baseline", "{method}"),
    benchmark:
        PATHS.benchmark("baseline", "{method}")
    conda:
        "../envs/dip.yaml"
    threads: lambda wildcards: config["threads"] if METHOD_TYPES[wildcards.method].on_device else 1
    resources:
        gpu=lambda wildcards: (
            config["resources"]["gpu"]
            if METHOD_TYPES[wildcards.method].fits_net
            else 0
        ),
    params:
        net=baseline_net_flags,
        slots=slot_environment,
    shell:
        "{params.slots}dip baseline {input:q} --method {wildcards.method:q} --out {output:q}"
        " {params.net} --record-failure {log:q} > {log:q} 2>&1"
