rule export_image:
    output:
        directory(IMAGE_DIR),
    log:
        "results/logs/export_image/{dataset}/{image}.log",
    benchmark:
        "results/benchmarks/export_image/{dataset}/{image}.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        source=lambda wildcards: config["datasets"][wildcards.dataset]["source"],
        flags=export_flags,
    shell:
        "dip datasets export {params.source:q} --images {wildcards.image} --out {output}"
        " {params.flags} --record-failure {log} > {log} 2>&1"
